"""``python -m satbench.cli`` (as ``torchrun ... -m satbench.cli`` uses it)."""

from satbench.cli.main import main

raise SystemExit(main())
