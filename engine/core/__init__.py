"""What every engine shares: errors, the Reporter contract and jobs, checkpoints, devices, data."""
