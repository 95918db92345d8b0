"""The fitted model as plain state, the training function that makes it, and its artifacts."""
