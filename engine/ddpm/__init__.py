"""DDPM on MNIST (Ho et al. 2020): noise schedule, U-Net, data, training, samplers, a scoring classifier, command line."""
