"""The domain: entities, rules, errors and ports. Standard library only."""
