"""Model deployers: turn a trained model into a served model version."""
