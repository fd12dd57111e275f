"""bert4keras' Tokenizer as TensorFlow graph ops: raw strings in, the same token ids out.

multilabel/export.py folds it into the SavedModel, so a client (stock TF Serving included) sends text and
no client has to reimplement the tokenizer. Only core TensorFlow ops (string, ragged, hash
table): no tensorflow-text, whose ops stock TF Serving does not register.

The steps of `Tokenizer(load_vocab(vocab), do_lower_case=True).encode(text, maxlen=maxlen)`:

1. Per character: lower-case, NFD, drop the Mn marks, then space out punctuation and CJK
   characters, turn spaces into separators and drop control characters. All of that is a
   function of the one code point (see `char_table` for the exception), so a table built here
   in Python with bert4keras' own functions maps every code point whose text changes to its new
   text; a code point absent from the table stands for itself.
2. Split on whitespace into words.
3. WordPiece per word: greedy longest match from the left, '##' inside a word; a word with a
   position no vocabulary entry matches, or longer than 200 characters, is one [UNK].
4. [CLS] + tokens + [SEP], the tokens cut to maxlen - 2.

With `long_text='chunk'` a text longer than one window is read as overlapping windows instead
of cut (`windows`), by loader's one window rule (`window_starts`, `window_stride`).
"""
import sys
import unicodedata

from multilabel import compat  # noqa: F401  (tf-keras environment before TensorFlow)
import tensorflow as tf
from bert4keras.snippets import lowercase_and_normalize
from bert4keras.tokenizers import Tokenizer

import loader

MAX_CODE_POINT = 0x110000


def normalised_char(tokenizer, char):
    """The text bert4keras' `_tokenize` makes of `char` before splitting into words, every
    whitespace written as an ASCII space (tf.strings.split splits on ASCII whitespace only,
    Python's str.split on all of Unicode's, U+2028 included)."""
    text = lowercase_and_normalize(char) if tokenizer._do_lower_case else char
    spaced = ''
    for ch in text:  # the loop of Tokenizer._tokenize
        if tokenizer._is_punctuation(ch) or tokenizer._is_cjk_character(ch):
            spaced += ' ' + ch + ' '
        elif tokenizer._is_space(ch):
            spaced += ' '
        elif ord(ch) == 0 or ord(ch) == 0xfffd or tokenizer._is_control(ch):
            continue
        else:
            spaced += ch
    return ''.join(' ' if ch.isspace() else ch for ch in spaced)


def might_change(tokenizer, char):
    """False only for a character that `normalised_char` surely leaves as it is (a fast
    pre-check: most of Unicode's 1.1 million code points are letters or unassigned)."""
    return (char in '\0\ufffd' or char.lower() != char or not unicodedata.is_normalized('NFD', char) or char.isspace()
            or unicodedata.category(char) in ('Mn', 'Cc', 'Cf', 'Zs', 'Zl', 'Zp') or tokenizer._is_punctuation(char)
            or tokenizer._is_cjk_character(char))


def char_table(tokenizer, run=64):
    """({code point: its text after step 1} for every code point whose text changes, [(first,
    last)] ranges of at least `run` code points that are each spaced out as they are).

    The ranges (the CJK blocks) keep the table small. Exact for every text but one case:
    Python's str.lower() writes a Greek capital sigma at the end of a word as final sigma (ς)
    and elsewhere as σ, which depends on the neighbours; here it is always σ. (Canonical
    reordering in NFD only moves marks, which are dropped.)
    """
    table, spaced = {}, []
    for code in range(MAX_CODE_POINT):
        if 0xD800 <= code <= 0xDFFF:  # surrogates: never in decoded UTF-8
            continue
        char = chr(code)
        if not might_change(tokenizer, char):
            continue
        text = normalised_char(tokenizer, char)
        if text == f' {char} ':
            if spaced and spaced[-1][1] == code - 1:
                spaced[-1][1] = code
            else:
                spaced.append([code, code])
        elif text != char:
            table[code] = text
    ranges = []
    for first, last in spaced:
        if last - first + 1 >= run:
            ranges.append((first, last))
        else:
            table.update({code: f' {chr(code)} ' for code in range(first, last + 1)})
    return table, ranges


class GraphTokenizer(tf.Module):
    """`tokenizer` (a bert4keras Tokenizer) as graph ops; `token_ids(texts)` -> padded ids."""

    def __init__(self, tokenizer, maxlen, word_maxlen=200):
        super().__init__()
        self.maxlen = maxlen
        self.word_maxlen = word_maxlen
        table, self.spaced_ranges = char_table(tokenizer)
        self.chars = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(table), tf.int64), tf.constant(list(table.values()), tf.string)), default_value='\0')
        vocab = tokenizer._token_dict
        self.vocab = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(vocab), tf.string), tf.constant(list(vocab.values()), tf.int64)), default_value=-1)
        # The longest piece worth trying, in characters ('##' not counted).
        self.piece_chars = max(len(Tokenizer.stem(token)) for token in vocab)
        self.cls_id = tokenizer._token_start_id
        self.sep_id = tokenizer._token_end_id
        self.unk_id = tokenizer._token_unk_id

    def words(self, texts):
        """[batch] strings -> ragged [batch, words] strings (steps 1 and 2)."""
        code_points = tf.strings.unicode_decode(texts, 'UTF-8', errors='replace', replacement_char=0xFFFD)
        flat = tf.cast(code_points.flat_values, tf.int64)
        mapped = self.chars.lookup(flat)
        itself = tf.strings.unicode_encode(tf.expand_dims(tf.cast(flat, tf.int32), 1), 'UTF-8')
        spaced = tf.zeros_like(flat, tf.bool)
        for first, last in self.spaced_ranges:
            spaced |= (flat >= first) & (flat <= last)
        itself = tf.where(spaced, tf.strings.join([' ', itself, ' ']), itself)
        mapped = tf.where(tf.equal(mapped, '\0'), itself, mapped)
        normalised = tf.strings.reduce_join(code_points.with_flat_values(mapped), axis=1)
        return tf.strings.split(normalised)

    def content_ids(self, texts):
        """[batch] strings -> ragged [batch, tokens] int32 ids, without [CLS]/[SEP], untruncated."""
        words = self.words(texts)
        chars = tf.strings.unicode_split(words.flat_values, 'UTF-8')  # ragged [words, chars]
        flat_chars = chars.flat_values
        count = tf.shape(flat_chars, out_type=tf.int64)[0]
        word_of_char = chars.value_rowids()
        word_start = chars.row_starts()
        word_length = chars.row_lengths()
        position = tf.range(count) - tf.gather(word_start, word_of_char)  # within its word
        room = tf.gather(word_length, word_of_char) - position  # characters left from here

        # The longest vocabulary piece that starts at each character ('##' unless first).
        best_length = tf.zeros([count], tf.int64)
        best_id = tf.zeros([count], tf.int64)
        piece = tf.fill([count], '')
        for length in range(1, self.piece_chars + 1):
            piece = tf.strings.join([piece, tf.gather(flat_chars, tf.minimum(tf.range(count) + length - 1,
                                                                              tf.maximum(count - 1, 0)))])
            key = tf.where(position > 0, tf.strings.join(['##', piece]), piece)
            found_id = self.vocab.lookup(key)
            found = (room >= length) & (found_id >= 0)
            best_length = tf.where(found, tf.cast(length, tf.int64), best_length)
            best_id = tf.where(found, found_id, best_id)

        # Greedy walk of every word at once: from a token's start, jump by its length. A word
        # meets a character where nothing matches -> the whole word is [UNK] (bert4keras).
        too_long = word_length > self.word_maxlen
        word_end = word_start + word_length
        starts = tf.zeros([count], tf.bool)
        failed = tf.zeros_like(too_long)
        current = word_start
        active = ~too_long & (word_length > 0)

        def walk(current, active, starts, failed):
            at = tf.boolean_mask(current, active)
            starts = tf.tensor_scatter_nd_update(starts, tf.expand_dims(at, 1), tf.ones_like(at, tf.bool))
            step = tf.gather(best_length, tf.minimum(current, tf.maximum(count - 1, 0)))
            failed = failed | (active & tf.equal(step, 0))
            current = current + step
            active = active & (step > 0) & (current < word_end)
            return current, active, starts, failed

        _, _, starts, failed = tf.while_loop(lambda c, active, s, f: tf.reduce_any(active), walk,
                                             [current, active, starts, failed])
        unknown = failed | too_long
        char_of_unknown_word = tf.gather(unknown, word_of_char)
        emit = (starts & ~char_of_unknown_word) | (tf.equal(position, 0) & char_of_unknown_word)
        ids = tf.where(char_of_unknown_word, tf.cast(self.unk_id, tf.int64), best_id)
        # Back from characters to texts: characters -> words -> texts.
        text_of_word = words.value_rowids()
        text_of_char = tf.gather(text_of_word, word_of_char)
        tokens_per_text = tf.math.unsorted_segment_sum(tf.cast(emit, tf.int64), text_of_char, words.nrows())
        return tf.RaggedTensor.from_row_lengths(tf.cast(tf.boolean_mask(ids, emit), tf.int32), tokens_per_text)

    def token_ids(self, texts):
        """[batch] strings -> [batch, length] int32 ids, [CLS] ... [SEP], at most maxlen, 0-padded."""
        content = self.content_ids(texts)[:, :self.maxlen - 2]
        return self.frame(content).to_tensor(0)

    def frame(self, content):
        """Ragged content ids -> [CLS] + ids + [SEP] per row."""
        rows = content.nrows()
        cls = tf.fill([rows, 1], tf.constant(self.cls_id, tf.int32))
        sep = tf.fill([rows, 1], tf.constant(self.sep_id, tf.int32))
        return tf.concat([tf.RaggedTensor.from_tensor(cls), content, tf.RaggedTensor.from_tensor(sep)], axis=1)

    def windows(self, texts, stride):
        """(padded window ids [windows, length], text index of each window): each text's
        content tokens c1..cn in windows of L = maxlen - 2 starting at
        list(range(0, n - L, stride)) + [n - L], one window when n <= L: loader.window_starts,
        with its stride rule."""
        window = self.maxlen - 2
        stride = loader.window_stride(window, stride)
        content = self.content_ids(texts)
        n = content.row_lengths()
        # Windows per text: one when it fits, else len(range(0, n - L, stride)) + 1.
        per_text = tf.where(n <= window, tf.ones_like(n), (n - window + stride - 1) // stride + 1)
        text_of_window = tf.repeat(tf.range(content.nrows()), per_text)
        index = tf.range(tf.reduce_sum(per_text)) - tf.repeat(tf.cumsum(per_text, exclusive=True), per_text)
        length = tf.gather(n, text_of_window)
        last = tf.equal(index, tf.gather(per_text, text_of_window) - 1)
        start = tf.where(last, tf.maximum(length - window, 0), index * stride)
        size = tf.minimum(length, window)
        offsets = tf.gather(content.row_starts(), text_of_window) + start
        positions = tf.RaggedTensor.from_row_lengths(
            tf.repeat(offsets, size) + tf.range(tf.reduce_sum(size)) - tf.repeat(tf.cumsum(size, exclusive=True), size),
            size)
        window_ids = tf.gather(content.flat_values, positions)
        return self.frame(window_ids).to_tensor(0), text_of_window


if __name__ == '__main__':  # python -m multilabel.graph_tokenizer VOCAB TEXT...: print the ids
    module = GraphTokenizer(loader.load_tokenizer(sys.argv[1]), maxlen=512)
    print(module.token_ids(tf.constant(sys.argv[2:])).numpy())
