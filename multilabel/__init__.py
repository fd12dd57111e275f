"""The machinery under the commands at the root: the training run and its history, the
pretraining objectives, the in-graph tokenizer, calibration and explanations, reports and
figures, and the commands reached as `python main.py VERB` (recipe, stats, audit, suggest,
plot, export, serve). docs/design.md maps every module to its floor.
"""
