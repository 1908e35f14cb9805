"""Training and synthetic data: imported only by the commands that train or render.

train   the shipped model's trainer (scripts/train.py): SupCon on synthetic renders
synth   the procedural leopard renderer (`reid synth`), split by what it draws

Never imported on the identify path (reid.identify, the service):
tests/test_imports.py checks it.
"""
