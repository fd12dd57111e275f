"""The EMA weights of an earlier epoch, from a weights folder's resume checkpoint, as a weights folder.

    python bench/resume_weights.py bench/weights/small-len64 ckpt-2 bench/weights/small-len64-epoch2 --epoch 2

train.py keeps the best epoch's EMA weights in best_weights.h5 and the last two epochs' full
training state in resume/. To compare two runs at the same epoch when one of them has gone
further, this rebuilds the model and optimizer, restores the checkpoint, swaps the EMA weights
in (bias-corrected, as train.py's evaluator does) and writes them with the folder's other files.
"""
import argparse
import os
import shutil
import sys

# The modules that start TensorFlow (loader, model, train...) are imported inside the functions
# that use them, so --help answers at once.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import config  # noqa: E402
import path  # noqa: E402
from multilabel import model_folder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', help='weights folder written by train.py')
    parser.add_argument('checkpoint', help='checkpoint name in its resume/ folder, e.g. ckpt-2')
    parser.add_argument('out', help='new weights folder')
    parser.add_argument('--epoch', type=int, required=True, help='the epoch that checkpoint closed')
    args = parser.parse_args(argv)
    import model as model_lib
    meta = model_folder.read(args.weights)
    state = path.read_resume_state(args.weights)
    cfg = config.Config(**state['run']['config'])
    classifier = model_lib.build_classifier(model_folder.config_path(args.weights), len(meta['labels']),
                                            dropout=meta['dropout'], head=meta.get('head', 'cls'))
    model_lib.compile_for_training(classifier, cfg)
    import tensorflow as tf
    snapshot = tf.train.Checkpoint(model=classifier, optimizer=classifier.optimizer)
    status = snapshot.restore(os.path.join(args.weights, path.RESUME_DIR, args.checkpoint))
    optimizer = model_lib.ema_optimizer(classifier)
    optimizer._create_all_weights(classifier.trainable_variables)  # the slots, EMA included, take their values
    status.assert_existing_objects_matched()
    optimizer.apply_ema_weights()
    os.makedirs(os.path.join(args.out, path.RESUME_DIR), exist_ok=True)
    for name in os.listdir(args.weights):
        if os.path.isfile(os.path.join(args.weights, name)) and name != path.WEIGHTS_NAME:
            shutil.copy(os.path.join(args.weights, name), args.out)
    model_folder.save_weights(args.out, classifier)
    path.write_json(path.resume_state_file(args.out),
                    {**state, 'epoch': args.epoch, 'checkpoint': args.checkpoint, 'source': args.weights})
    print(f'{args.out}: the EMA weights of {args.checkpoint} (epoch {args.epoch}, '
          f'{int(optimizer.iterations.numpy())} steps)')


if __name__ == '__main__':
    config.run_main(main)
