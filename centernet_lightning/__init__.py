"""CenterNet object detection on PyTorch Lightning."""
