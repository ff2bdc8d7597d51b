"""Preconditioning wrappers: every model is a denoiser D(x; sigma) in EDM's VE form.

Each wrapper holds its backbone as `self.model`, so state-dict names match EDM's
(`model.<backbone param>`), and maps (x, sigma) -> denoised following the paper's
table of c_skip, c_out, c_in, c_noise.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .errors import UserError
from .files import torch_save
from .safe_pickle import torch_load
from .nets import build_kind, build_network


def _sigma_column(sigma, x):
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    return sigma.reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1) if sigma.ndim <= 1 else sigma


class EDMPrecond(nn.Module):
    """Karras et al. 2022, Table 1 (EDM column)."""

    def __init__(self, model: nn.Module, sigma_data: float = 0.5,  # std of the data
                 sigma_min: float = 0.0, sigma_max: float = float("inf")):
        super().__init__()
        self.model = model
        self.sigma_data, self.sigma_min, self.sigma_max = sigma_data, sigma_min, sigma_max

    def forward(self, x, sigma, class_labels=None, **model_kwargs):
        x = x.to(torch.float32)
        sigma = _sigma_column(sigma, x)
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = sigma.log() / 4
        F_x = self.model(c_in * x, c_noise.flatten(), class_labels=class_labels, **model_kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)


class VPPrecond(nn.Module):
    """Song et al. 2021 VP (DDPM++) models, seen in VE form (EDM Table 1, VP column)."""

    def __init__(self, model: nn.Module, beta_d: float = 19.9,  # extent of the noise levels
                 beta_min: float = 0.1,        # initial slope of the noise levels
                 M: int = 1000,                # discretisation steps of the original DDPM
                 epsilon_t: float = 1e-5):     # minimum t
        super().__init__()
        self.model = model
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        self.sigma_min = float(self.sigma(torch.tensor(epsilon_t)))
        self.sigma_max = float(self.sigma(torch.tensor(1.0)))

    def sigma(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return ((0.5 * self.beta_d * t ** 2 + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt()
                - self.beta_min) / self.beta_d

    def forward(self, x, sigma, class_labels=None, **model_kwargs):
        x = x.to(torch.float32)
        sigma = _sigma_column(sigma, x)
        c_skip = 1
        c_out = -sigma
        c_in = 1 / (sigma ** 2 + 1).sqrt()
        c_noise = (self.M - 1) * self.sigma_inv(sigma)
        F_x = self.model(c_in * x, c_noise.flatten(), class_labels=class_labels, **model_kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)


class CMPrecond(nn.Module):
    """A consistency model f(x; t) on a teacher's preconditioned network (Song et al. 2023,
    appendix C; openai/consistency_models_cifar10 `jcm/models/utils.py`): c_skip =
    sigma_data^2 / ((t - t_min)^2 + sigma_data^2) and c_out = sigma_data (t - t_min) /
    sqrt(t^2 + sigma_data^2), so f(x; t_min) = x exactly (the boundary condition). The
    network keeps its base preconditioning (`base`: edm or vp, the teacher's), whose
    denoised value D gives the network's output in EDM's scale, F = (D - c_skip_edm x) /
    c_out_edm; on an EDM base that is the backbone's own output. It is a denoiser in the
    solvers' sense: one Euler step to t = 0 returns f."""

    def __init__(self, model: nn.Module, sigma_data: float = 0.5, t_min: float = 0.002, base: str = "edm",
                 base_kwargs: dict | None = None):
        super().__init__()
        self.model = model
        self.sigma_data, self.t_min, self.base = sigma_data, t_min, base
        if base not in ("edm", "vp"):
            raise UserError(f"unknown base preconditioning '{base}' of a consistency model (known: edm, vp)")
        # not a submodule: it holds the same backbone, whose weights are `model.*` once
        self._base = [PRECONDS[base](model, **dict(base_kwargs or {}))]

    def forward(self, x, sigma, class_labels=None, **model_kwargs):
        x = x.to(torch.float32)
        sigma = _sigma_column(sigma, x)
        sd, shifted = self.sigma_data, sigma - self.t_min
        denoised = self._base[0](x, sigma, class_labels=class_labels, **model_kwargs)
        c_skip = sd ** 2 / (shifted ** 2 + sd ** 2)
        # c_out F with F = (D - c_skip_edm x) / c_out_edm: c_out / c_out_edm = (t - t_min) / t
        return c_skip * x + shifted / sigma * (denoised - sd ** 2 / (sigma ** 2 + sd ** 2) * x)


PRECONDS = {"edm": EDMPrecond, "vp": VPPrecond, "cm": CMPrecond}

CHECKPOINT_FORMAT = "diffdistill-checkpoint/2"


def build_denoiser(spec: dict) -> nn.Module:
    """spec = {net, net_kwargs, precond, precond_kwargs} -> D(x; sigma) module; a spec
    with a registered `kind` is built by that kind's builder."""
    if "kind" in spec:
        return build_kind(spec, build_denoiser)
    for key in ("net", "net_kwargs", "precond"):
        if key not in spec:
            raise UserError(f"denoiser spec lacks '{key}'")
    if spec["precond"] not in PRECONDS:
        raise UserError(f"unknown precond '{spec['precond']}' (known: {', '.join(PRECONDS)})")
    net = build_network(spec["net"], dict(spec["net_kwargs"]))
    return PRECONDS[spec["precond"]](net, **dict(spec.get("precond_kwargs", {})))


def base_spec(spec: dict) -> dict:
    """The plain denoiser spec inside a wrapped kind (SFD-v's base, a router's students)."""
    while "kind" in spec:
        spec = spec["base"] if "base" in spec else spec["students"][0]
    return spec


def image_shape(spec: dict) -> tuple:
    """(C, H, W) of a spec: ours name img_channels, EDM's SongUNet in_channels."""
    nk = base_spec(spec)["net_kwargs"]
    return (nk.get("img_channels", nk.get("in_channels")), nk["img_resolution"], nk["img_resolution"])


def save_denoiser(path, model: nn.Module, spec: dict, sampling: dict | None = None, **extra) -> None:
    """Plain checkpoint: format, constructor spec, state dict, sampling recipe (+ JSON-able extras)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save(path, {"format": CHECKPOINT_FORMAT, "spec": copy.deepcopy(spec), "state_dict": state,
                      "sampling": copy.deepcopy(sampling), **extra})


def read_checkpoint(path) -> dict:
    """The checkpoint dict, refused in one line if it is not this version's format."""
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "state_dict" not in ckpt:
        raise UserError(f"{path} is not a diffdistill checkpoint (needs 'spec' and 'state_dict')")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} was written by an older diffdistill (format {ckpt.get('format', 1)!r}, this "
                        f"version reads {CHECKPOINT_FORMAT!r}): delete it and rerun the rule that makes it")
    return ckpt


def load_denoiser(path, device="cpu") -> tuple[nn.Module, dict]:
    model, ckpt = load_checkpoint(path, device)
    return model, ckpt["spec"]


def load_checkpoint(path, device="cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode without gradients, checkpoint dict with spec and sampling recipe)."""
    ckpt = read_checkpoint(path)
    model = build_denoiser(ckpt["spec"])
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit the network of its spec ({str(e).splitlines()[0]})") from None
    return model.to(device).eval().requires_grad_(False), ckpt


def load_teacher(path, device="cpu", images: torch.Tensor | None = None) -> tuple[nn.Module, dict]:
    """A plain denoiser network (a teacher, or a student that teaches the next stage),
    refused in one line when it is a wrapped kind (a router, a step-conditioned student)
    or its image shape differs from the dataset's `images` [N, C, H, W]."""
    ckpt = read_checkpoint(path)
    spec = ckpt["spec"]
    if "kind" in spec:
        raise UserError(f"{path} is a {spec['kind']} model, not a plain denoiser network: a teacher must be one "
                        "network (the trained or imported teacher, or an SFD/PD student)")
    if images is not None and tuple(images.shape[1:]) != tuple(image_shape(spec)):
        c, h, w = image_shape(spec)
        raise UserError(f"{path} makes {c}x{h}x{w} images but the dataset holds {'x'.join(map(str, images.shape[1:]))} "
                        "(channels x height x width): use a teacher of this dataset")
    return load_denoiser(path, device=device)
