"""Everything about turning a model name into a feature extractor: cards, registry, weights, checkpoints, hub, backbone families."""
