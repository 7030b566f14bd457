"""Losses: feature distillation, pixel reconstruction (perceptual, GAN), next-token."""
