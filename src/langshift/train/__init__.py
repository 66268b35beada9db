"""Training: encoding, log-probs, objectives, trainable parameters, the trainer."""
