"""Training the network: simulated training sets with PCR labels, augmentation, the loss and
the training loop with checkpoints that resume."""
