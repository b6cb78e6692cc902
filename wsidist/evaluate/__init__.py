"""Masks from selected tiles, and segmentation metrics of masks against ground truth."""
