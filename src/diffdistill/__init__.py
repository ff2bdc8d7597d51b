"""diffdistill: reproducible diffusion-model distillation (SFD, PD, O2MKD).

Kept light on purpose: importing the package imports no torch.
"""
__version__ = "0.2.0"
