"""Business rules: filter expressions, short-list filling and honest labels (issue #15)."""
