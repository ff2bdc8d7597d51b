"""Distillation methods (one module each) behind one interface, plus the shared loop."""
