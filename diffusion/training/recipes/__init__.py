"""Training recipes: what one method trains (models, trainable parameters, loss, data) on the shared trainer."""
