"""`python -m reid.training.synth`: the same as `reid synth`."""

from reid.training.synth.dataset import main

raise SystemExit(main())
