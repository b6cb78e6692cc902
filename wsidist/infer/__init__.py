"""Inference: models over overlapping patches into heatmaps, uncertainty and region features."""
