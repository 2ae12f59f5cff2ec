"""``python -m satbench.cli`` (as ``torchrun ... -m satbench.cli`` uses it)."""

from satbench.cli.app import main

raise SystemExit(main())
