"""`satbench suite`: plan the runs a model is missing, then run them."""
