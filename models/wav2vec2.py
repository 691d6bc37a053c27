"""wav2vec 2.0 / XLS-R front-end on ``transformers.Wav2Vec2Model``; loads fairseq checkpoints without fairseq.

The detectors built on XLS-R (SSL_Anti-spoofing's AASIST back-end, AMSDF's text view) call fairseq's
``model(x, mask=False, features_only=True)['x']``: the output of the last transformer layer after the
encoder's final LayerNorm (for pre-LN models such as XLS-R). ``XLSR`` reproduces that with a Hugging Face
``Wav2Vec2Model`` whose SpecAugment is off and whose dropouts and layerdrop are those of the checkpoint. The
waveform is used as given (no per-utterance normalisation), as those detectors do.

Sources ``XLSR.from_pretrained`` accepts:

- a fairseq checkpoint (``xlsr2_300m.pt``): its model config is read from ``cfg['model']`` (fairseq >= 0.10)
  or from the ``args`` Namespace (older files), its keys are converted and loaded with ``strict=True``; the
  pre-training heads (``mask_emb``, ``quantizer.*``, ``project_q.*``, ``final_proj.*``) are dropped. A file of
  plain dicts and tensors loads with ``torch.load(weights_only=True)``. A file that pickles an
  ``argparse.Namespace`` or an OmegaConf ``DictConfig`` needs ``trust_pickle=True``: it is then read by a
  restricted unpickler that turns OmegaConf objects (and any class of a module that is not installed, such as
  fairseq's) into inert stand-ins, so neither fairseq nor omegaconf is needed;
- a Hugging Face directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), e.g.
  ``facebook/wav2vec2-xls-r-300m`` saved locally, or one written by ``XLSR.save_pretrained``;
- a whole-detector state dict whose XLS-R part carries a prefix (``ssl_model.model.``,
  ``text_view_extract.model.``, ``w2v_encoder.w2v_model.``, optionally under ``module.``): ``split_ssl_state``
  separates it; the structure then comes from a named size;
- a named size with random weights: ``"tiny"`` (the structure of the test fixtures) or ``"xlsr_300m"``.

Convert once, load fast:
``python -m models.wav2vec2 xlsr2_300m.pt models/weights/xlsr2_300m_hf [--trust-pickle]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import pickle
import re
import types
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model

from antispoof.errors import first_line
from models import WeightLoadError, check_state_dict_fits, freeze, load_weights, safe_load, strip_prefix
from models.options import Option, boolean, text

# ------------------------------------------------------------------------------------------------------------
# model configurations
# ------------------------------------------------------------------------------------------------------------

XLSR_CONV_LAYERS = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"

# fairseq-style model configs of the named sizes; unspecified fields take fairseq's Wav2Vec2Config defaults
NAMED_SIZES: dict[str, dict] = {
    # the structure of ../shared/fixtures/xlsr (XLS-R's layout, scaled down): fast enough for CPU tests
    "tiny": {
        "encoder_layers": 2,
        "encoder_embed_dim": 64,
        "encoder_ffn_embed_dim": 256,
        "encoder_attention_heads": 4,
        "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "dropout_input": 0.0,
    },
    # XLS-R 300M (xlsr2_300m.pt); a real checkpoint brings its own dropouts
    "xlsr_300m": {
        "encoder_layers": 24,
        "encoder_embed_dim": 1024,
        "encoder_ffn_embed_dim": 4096,
        "encoder_attention_heads": 16,
        "conv_feature_layers": XLSR_CONV_LAYERS,
    },
}

# fairseq's Wav2Vec2Config defaults, with XLS-R's layout where XLS-R departs from wav2vec 2.0 base
FAIRSEQ_DEFAULTS = {
    "extractor_mode": "layer_norm",
    "layer_norm_first": True,
    "conv_bias": True,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "activation_fn": "gelu",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "feature_grad_mult": 1.0,
}

ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu", "swish": "silu", "tanh": "tanh"}


def parse_conv_layers(spec: str | list) -> list[tuple[int, int, int]]:
    """Parse fairseq's ``conv_feature_layers`` (``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``) without ``eval``.

    Only list and tuple literals of integers, list concatenation (``+``) and repetition by an integer (``*``)
    are accepted; anything else is an error.
    """
    if not isinstance(spec, str):
        layers = spec
    else:

        def value(node):
            if isinstance(node, ast.Expression):
                return value(node.body)
            if isinstance(node, ast.Constant) and type(node.value) is int:
                return node.value
            if isinstance(node, ast.Tuple):
                return tuple(value(e) for e in node.elts)
            if isinstance(node, ast.List):
                return [value(e) for e in node.elts]
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                left, right = value(node.left), value(node.right)
                if isinstance(left, list) and isinstance(right, list):
                    return left + right
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
                left, right = value(node.left), value(node.right)
                if isinstance(left, list) and type(right) is int and 0 <= right <= 1000:
                    return left * right
                if isinstance(right, list) and type(left) is int and 0 <= left <= 1000:
                    return right * left
            raise ValueError(f"unsupported expression {ast.dump(node)[:80]}")

        try:
            layers = value(ast.parse(spec.strip(), mode="eval"))
        except (SyntaxError, ValueError) as exc:
            raise ValueError(
                f"conv_feature_layers {spec!r} is not a list of (dim, kernel, stride): {exc}"
            ) from exc
    if not isinstance(layers, list | tuple) or not layers:
        raise ValueError(f"conv_feature_layers {spec!r} is not a non-empty list")
    out = []
    for layer in layers:
        if not (isinstance(layer, list | tuple) and len(layer) == 3 and all(type(v) is int for v in layer)):
            raise ValueError(f"conv_feature_layers {spec!r}: {layer!r} is not (dim, kernel, stride)")
        out.append(tuple(layer))
    return out


def hf_config_from_fairseq(model_cfg: Mapping) -> Wav2Vec2Config:
    """A ``Wav2Vec2Config`` equivalent to a fairseq wav2vec 2.0 model config (SpecAugment off)."""
    cfg = {**FAIRSEQ_DEFAULTS, **{k: v for k, v in dict(model_cfg).items() if v is not None}}
    for key in ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads"):
        if key not in cfg:
            raise ValueError(f"the wav2vec 2.0 model config has no {key!r}")
    if cfg.get("layer_type", "transformer") != "transformer":
        raise ValueError(f"layer_type {cfg['layer_type']!r} is not supported (only 'transformer')")
    if int(cfg.get("pos_conv_depth", 1)) != 1:
        raise ValueError(f"pos_conv_depth {cfg['pos_conv_depth']} is not supported (only 1)")
    if cfg.get("pos_enc_type", "abs") != "abs":
        raise ValueError(f"pos_enc_type {cfg['pos_enc_type']!r} is not supported (only 'abs')")
    if cfg["extractor_mode"] not in ("layer_norm", "default"):
        raise ValueError(f"extractor_mode {cfg['extractor_mode']!r} is not 'layer_norm' or 'default'")
    if cfg["activation_fn"] not in ACTIVATIONS:
        raise ValueError(f"activation_fn {cfg['activation_fn']!r} is not supported")
    conv = parse_conv_layers(cfg.get("conv_feature_layers", XLSR_CONV_LAYERS))
    return Wav2Vec2Config(
        hidden_size=int(cfg["encoder_embed_dim"]),
        num_hidden_layers=int(cfg["encoder_layers"]),
        num_attention_heads=int(cfg["encoder_attention_heads"]),
        intermediate_size=int(cfg["encoder_ffn_embed_dim"]),
        hidden_act=ACTIVATIONS[cfg["activation_fn"]],
        conv_dim=[c[0] for c in conv],
        conv_kernel=[c[1] for c in conv],
        conv_stride=[c[2] for c in conv],
        conv_bias=bool(cfg["conv_bias"]),
        feat_extract_norm="layer" if cfg["extractor_mode"] == "layer_norm" else "group",
        feat_extract_activation="gelu",
        num_conv_pos_embeddings=int(cfg["conv_pos"]),
        num_conv_pos_embedding_groups=int(cfg["conv_pos_groups"]),
        do_stable_layer_norm=bool(cfg["layer_norm_first"]),
        # fairseq `dropout` acts after the positional conv, the attention and the FFN: HF hidden_dropout
        hidden_dropout=float(cfg["dropout"]),
        attention_dropout=float(cfg["attention_dropout"]),
        activation_dropout=float(cfg["activation_dropout"]),
        feat_proj_dropout=float(cfg["dropout_input"]),
        layerdrop=float(cfg["encoder_layerdrop"]),
        final_dropout=0.0,
        layer_norm_eps=1e-5,
        feature_grad_mult=float(cfg["feature_grad_mult"]),
        **SPEC_AUGMENT_OFF,
    )


SPEC_AUGMENT_OFF = {"apply_spec_augment": False, "mask_time_prob": 0.0, "mask_feature_prob": 0.0}


def named_config(size: str, **overrides) -> Wav2Vec2Config:
    """The ``Wav2Vec2Config`` of a named size (``tiny``, ``xlsr_300m``), fairseq-style overrides allowed."""
    if size not in NAMED_SIZES:
        raise ValueError(f"unknown XLS-R size {size!r}; known: {', '.join(NAMED_SIZES)}")
    return hf_config_from_fairseq({**NAMED_SIZES[size], **overrides})


# ------------------------------------------------------------------------------------------------------------
# reading checkpoint files
# ------------------------------------------------------------------------------------------------------------


class _Inert:
    """Stand-in for a pickled object whose class must not (or cannot) be imported: it only keeps its state."""

    def __init__(self, *args, **kwargs):
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state):
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(s is None or isinstance(s, dict) for s in state)
        ):
            for part in state:
                self.__dict__.update(part or {})
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state


class _OmegaDict(_Inert):
    """Stand-in for ``omegaconf.DictConfig``: its content is ``_content`` (a dict of nodes), as pickled."""


class _OmegaList(_Inert):
    """Stand-in for ``omegaconf.ListConfig``."""


class _OmegaNode(_Inert):
    """Stand-in for an OmegaConf value node (``AnyNode``, ``StringNode``, ...): its value is ``_val``."""


def _inert_class(module: str, name: str) -> type:
    return type(name, (_Inert,), {"__module__": f"inert.{module}"})


# callables the restricted unpickler may run: containers, tensor rebuilding, numpy scalars
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "bool"),
    ("builtins", "str"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("argparse", "Namespace"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for trusted fairseq checkpoints that never imports fairseq or omegaconf.

    OmegaConf containers pickle their ``__dict__`` (``_content``: key -> node; nodes keep ``_val``); they
    come back as stand-ins that ``_plain`` turns into dicts and lists. Classes of any other module outside the
    allow-list come back as inert stand-ins too, so loading runs no code beyond container and tensor
    reconstruction.
    """

    def find_class(self, module, name):
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
        if module.startswith("omegaconf"):
            if name == "DictConfig":
                return _OmegaDict
            if name == "ListConfig":
                return _OmegaList
            if name.endswith("Node"):
                return _OmegaNode
            return _inert_class(module, name)
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return _inert_class(module, name)


_restricted_pickle = types.ModuleType("restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()


def _plain(obj, depth: int = 0):
    """Turn OmegaConf stand-ins, Namespaces and nested containers into plain dicts, lists and values."""
    if depth > 100:
        raise ValueError("config nesting too deep")
    if isinstance(obj, _OmegaDict | _OmegaList):
        content = obj.__dict__.get("_content")
        if isinstance(content, dict):
            return {str(k): _plain(v, depth + 1) for k, v in content.items()}
        if isinstance(content, list | tuple):
            return [_plain(v, depth + 1) for v in content]
        return content  # None, "???" (missing) or an interpolation string
    if isinstance(obj, _OmegaNode):
        return _plain(obj.__dict__.get("_val"), depth + 1)
    if isinstance(obj, argparse.Namespace):
        return {k: _plain(v, depth + 1) for k, v in vars(obj).items()}
    if isinstance(obj, Mapping):
        return {k: _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v, depth + 1) for v in obj)
    return obj


_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")


def _resolve(obj, root, depth: int = 0):
    """Resolve OmegaConf interpolations of the form ``${a.b}`` (absolute paths) against ``root``."""
    if isinstance(obj, dict):
        return {k: _resolve(v, root, depth) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, root, depth) for v in obj]
    if isinstance(obj, str) and depth < 10 and (m := _INTERPOLATION.match(obj)):
        node = root
        for part in m.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                return obj
            node = node[part]
        return _resolve(node, root, depth + 1)
    return obj


def _unsupported_global(exc: Exception) -> str:
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return match.group(1) if match else ""


def load_checkpoint_file(path: str | Path, trust_pickle: bool = False):
    """Read a checkpoint file: ``models.safe_load`` first; pickled objects only with ``trust_pickle``."""
    try:
        return safe_load(path, what="checkpoint file")
    except WeightLoadError as exc:  # weights_only refuses pickled classes; the file may also be corrupt
        offending = _unsupported_global(exc.__cause__) if exc.__cause__ is not None else ""
        if not offending:
            raise
    if not trust_pickle:
        what = {
            "argparse.Namespace": "an argparse.Namespace (the 'args' of an older fairseq checkpoint)",
            "omegaconf.dictconfig.DictConfig": "an OmegaConf DictConfig (its 'cfg')",
        }.get(offending, f"a Python object of class {offending}")
        raise WeightLoadError(
            f"{path}: the checkpoint pickles {what}, which torch.load(weights_only=True) refuses because "
            "unpickling objects can run code; if you trust this file, load it with trust_pickle=True "
            '(config: "trust_pickle": true), or convert it once with '
            "`python -m models.wav2vec2 CHECKPOINT OUT_DIR --trust-pickle` and use OUT_DIR"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
    except Exception as exc:
        raise WeightLoadError(f"{path}: cannot be read even as a trusted pickle ({first_line(exc)})") from exc


# ------------------------------------------------------------------------------------------------------------
# key conversion
# ------------------------------------------------------------------------------------------------------------

# fairseq pre-training heads and masking vectors, unused by features_only=True; HF counterparts likewise
PRETRAINING_KEYS = re.compile(
    r"^(mask_emb|quantizer\..*|project_q\..*|final_proj\..*|target_glu\..*|input_quantizer\..*|project_inp\..*"
    r"|masked_spec_embed|project_hid\..*|lm_head\..*)$"
)

_FAIRSEQ_TO_HF = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^layer_norm\.", "feature_projection.layer_norm."),
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.", r"encoder.layers.\1.attention.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.final_layer_norm."),
    (r"^encoder\.layer_norm\.", "encoder.layer_norm."),
]
_FAIRSEQ_TO_HF = [(re.compile(a), b) for a, b in _FAIRSEQ_TO_HF]

# the two spellings of the positional conv's weight-norm parameters (nn.utils.weight_norm vs parametrizations)
_WEIGHT_NORM_SPELLINGS = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def is_fairseq_naming(state: Mapping) -> bool:
    return any(k.startswith(("post_extract_proj.", "encoder.pos_conv.")) for k in state)


def fairseq_to_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename fairseq wav2vec 2.0 keys to ``Wav2Vec2Model`` keys; pre-training heads are dropped."""
    out = {}
    for key, value in state.items():
        if PRETRAINING_KEYS.match(key):
            continue
        for pattern, replacement in _FAIRSEQ_TO_HF:
            new, n = pattern.subn(replacement, key)
            if n:
                out[new] = value
                break
        else:
            raise WeightLoadError(f"unknown fairseq wav2vec 2.0 key {key!r}: cannot convert it")
    return out


def match_model_naming(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Drop HF pre-training keys and spell weight-norm parameters the way ``model`` names them."""
    own = set(model.state_dict())
    out = {}
    for key, value in state.items():
        if PRETRAINING_KEYS.match(key):
            continue
        if key not in own:
            for old, new in _WEIGHT_NORM_SPELLINGS.items():
                for a, b in ((old, new), (new, old)):
                    if key.endswith("." + a) and key[: -len(a)] + b in own:
                        key = key[: -len(a)] + b
        out[key] = value
    return out


# this project's AMSDF layout first: it starts with the authors' AMSDF prefix
SSL_PREFIXES = (
    "text_view_extract.model.model.",
    "ssl_model.model.",
    "text_view_extract.model.",
    "w2v_encoder.w2v_model.",
    "wav2vec2.",
)


def split_ssl_state(state: Mapping[str, torch.Tensor], prefixes=SSL_PREFIXES):
    """Split a whole-detector state dict into (XLS-R part without its prefix, the rest, the prefix found).

    A leading ``module.`` (DataParallel) is removed first. A state dict of a bare wav2vec 2.0 model (fairseq
    or HF naming, no prefix) is all XLS-R: the rest is empty and the prefix ``""``.
    """
    state = strip_prefix(state, "module.")
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in state):
            ssl = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
            return ssl, rest, prefix
    if any(k.startswith("feature_extractor.conv_layers.") for k in state):
        return state, {}, ""
    raise WeightLoadError(
        f"no wav2vec 2.0 weights found: no key starts with any of {', '.join(prefixes)} or feature_extractor."
    )


def convert_detector_state(
    state: Mapping[str, torch.Tensor], prefix: str, hf_model: nn.Module, new_prefix: str | None = None
) -> dict[str, torch.Tensor]:
    """A whole-detector state dict with its wav2vec 2.0 part under ``prefix`` renamed to ``hf_model``'s keys
    (under ``new_prefix``, by default the same prefix).

    The authors' checkpoints hold fairseq names (``ssl_model.model.encoder.layers.0.self_attn...``,
    pre-training heads included); those become ``Wav2Vec2Model`` names under the same prefix, heads dropped.
    A state dict already in HF naming only gets its weight-norm spelling matched. Other keys pass unchanged; a
    leading ``module.`` is removed.
    """
    state = strip_prefix(state, "module.")
    new_prefix = prefix if new_prefix is None else new_prefix
    if any(k.startswith(new_prefix) for k in state):
        prefix = new_prefix  # already in this project's layout: only the weight-norm spelling may differ
    ssl = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not ssl:
        return state
    if is_fairseq_naming(ssl):
        ssl = fairseq_to_hf(ssl)
    ssl = match_model_naming(ssl, hf_model)
    rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return {**rest, **{new_prefix + k: v for k, v in ssl.items()}}


# ------------------------------------------------------------------------------------------------------------
# the front-end
# ------------------------------------------------------------------------------------------------------------


class _GradMultiply(torch.autograd.Function):
    """Identity forward, gradient scaled by ``scale`` (fairseq's ``feature_grad_mult``)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class XLSR(nn.Module):
    """wav2vec 2.0 / XLS-R: waveform (B, T) at 16 kHz -> features (B, frames, dim), fairseq features_only."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        config = Wav2Vec2Config.from_dict({**config.to_dict(), **SPEC_AUGMENT_OFF})
        self.model = Wav2Vec2Model(config)
        self.feature_grad_mult = float(getattr(config, "feature_grad_mult", 1.0))
        # run the model under bfloat16 autocast (features returned as float32): less memory when fine-tuning
        self.bf16_autocast = False
        if self.feature_grad_mult == 0.0:  # fairseq then runs the conv stack without gradients
            for p in self.model.feature_extractor.parameters():
                p.requires_grad_(False)
        elif self.feature_grad_mult != 1.0:
            self.model.feature_extractor.register_forward_hook(self._scale_feature_grad)

    def _scale_feature_grad(self, module, inputs, output):
        return _GradMultiply.apply(output, self.feature_grad_mult) if torch.is_grad_enabled() else output

    @property
    def config(self) -> Wav2Vec2Config:
        return self.model.config

    @property
    def out_dim(self) -> int:
        return self.model.config.hidden_size

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def from_size(cls, size: str, **overrides) -> XLSR:
        """Random weights in a named size (``tiny``, ``xlsr_300m``)."""
        return cls(named_config(size, **overrides))

    @classmethod
    def from_pretrained(cls, source: str | Path, trust_pickle: bool = False, size: str | None = None) -> XLSR:
        """Build from a named size, a HF directory, a fairseq checkpoint or a (whole-detector) state dict.

        ``size`` gives the structure of a state-dict file that carries no config (default ``xlsr_300m``).
        """
        if str(source) in NAMED_SIZES:
            return cls.from_size(str(source))
        path = Path(source)
        if path.is_dir():
            return cls.from_hf_dir(path)
        checkpoint = load_checkpoint_file(path, trust_pickle=trust_pickle)
        if (
            isinstance(checkpoint, Mapping)
            and "model" in checkpoint
            and ("cfg" in checkpoint or "args" in checkpoint)
        ):
            return cls.from_fairseq_checkpoint(checkpoint, label=str(path))
        if isinstance(checkpoint, Mapping) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            ssl, _, _ = split_ssl_state(checkpoint)
            model = cls.from_size(size or "xlsr_300m")
            model.load_ssl_state(ssl, label=str(path))
            return model
        raise WeightLoadError(f"{path}: neither a fairseq checkpoint nor a state dict of tensors")

    @classmethod
    def from_fairseq_checkpoint(cls, checkpoint: Mapping, label: str = "fairseq checkpoint") -> XLSR:
        """Build from a loaded fairseq checkpoint dict (``cfg``/``args`` + ``model``)."""
        model_cfg = fairseq_model_config(checkpoint, label)
        try:
            config = hf_config_from_fairseq(model_cfg)
        except ValueError as exc:
            raise WeightLoadError(f"{label}: {exc}") from exc
        model = cls(config)
        state = checkpoint["model"]
        if any(k.startswith("w2v_encoder.w2v_model.") for k in state):  # a fine-tuned (CTC) checkpoint
            state, _, _ = split_ssl_state(state, prefixes=("w2v_encoder.w2v_model.",))
        model.load_ssl_state(state, label=label)
        return model

    @classmethod
    def from_hf_dir(cls, path: str | Path) -> XLSR:
        """Build from a Hugging Face directory (``config.json`` + safetensors or ``pytorch_model.bin``)."""
        path = Path(path)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise WeightLoadError(f"{path}: not a Hugging Face model directory (no config.json)")
        try:
            config = Wav2Vec2Config.from_dict(json.loads(config_file.read_text()))
        except (ValueError, TypeError) as exc:
            raise WeightLoadError(f"{config_file}: not a wav2vec 2.0 config ({exc})") from exc
        try:
            weights = read_hf_weights(path)
        except WeightLoadError:
            raise
        except Exception as exc:  # truncated or corrupt weight files
            raise WeightLoadError(f"{path}: cannot read the weights ({exc})") from exc
        state, _, _ = split_ssl_state(weights, prefixes=("wav2vec2.",))
        model = cls(config)
        model.load_ssl_state(state, label=str(path))
        return model

    def load_ssl_state(self, state: Mapping[str, torch.Tensor], label: str = "XLS-R weights") -> None:
        """Load fairseq- or HF-named wav2vec 2.0 weights (no prefix) strictly."""
        if is_fairseq_naming(state):
            try:
                state = fairseq_to_hf(state)
            except WeightLoadError as exc:
                raise WeightLoadError(f"{label}: {exc}") from None
        state = match_model_naming(state, self.model)
        check_state_dict_fits(self.model, state, f"{label} (wav2vec 2.0)")
        self.model.load_state_dict(state, strict=True)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a Hugging Face directory (config.json + model.safetensors) for ``from_pretrained``."""
        self.model.save_pretrained(str(directory))

    # -- running --------------------------------------------------------------------------------------------

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each transformer layer in the backward pass (less memory when fine-tuning)."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.model, "activation_checkpointing_enable"):  # transformers >= 5 renamed it
            if enabled:
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                self.model.activation_checkpointing_disable()
        elif enabled:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        else:
            self.model.gradient_checkpointing_disable()

    @property
    def gradient_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) for m in self.model.modules())

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 3:  # (B, T, 1), as SSL_Anti-spoofing accepts
            waveform = waveform[..., 0]
        if waveform.dim() != 2:
            raise ValueError(f"XLS-R expects a waveform batch (B, T), got shape {tuple(waveform.shape)}")
        if not self.bf16_autocast:
            return self.model(waveform).last_hidden_state
        with torch.autocast(device_type=waveform.device.type, dtype=torch.bfloat16):
            return self.model(waveform).last_hidden_state.float()

    def layer_outputs(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features and each transformer layer's output (batch-first), as fairseq's ``layer_results``."""
        captured: list[torch.Tensor] = []

        def keep(module, inputs, output):
            captured.append(output[0] if isinstance(output, tuple) else output)

        hooks = [layer.register_forward_hook(keep) for layer in self.model.encoder.layers]
        try:
            features = self(waveform)
        finally:
            for hook in hooks:
                hook.remove()
        return features, captured


def fairseq_model_config(checkpoint: Mapping, label: str) -> dict:
    """The wav2vec 2.0 model config of a fairseq checkpoint, as a plain dict."""
    cfg = _plain(checkpoint.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        cfg = _resolve(cfg, cfg)
        model_cfg = cfg["model"]
    elif checkpoint.get("args") is not None:
        model_cfg = _plain(checkpoint["args"])
        if not isinstance(model_cfg, dict):
            raise WeightLoadError(f"{label}: 'args' is not a Namespace or dict")
    else:
        raise WeightLoadError(f"{label}: the checkpoint has neither cfg['model'] nor args")
    w2v_args = model_cfg.get("w2v_args")  # fine-tuned checkpoints nest the pre-training config
    if w2v_args:
        w2v_args = _plain(w2v_args)
        model_cfg = w2v_args.get("model", w2v_args) if isinstance(w2v_args, dict) else model_cfg
    return model_cfg


def read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a HF directory: model.safetensors, sharded safetensors or pytorch_model.bin."""
    from safetensors.torch import load_file

    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        state = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(str(path / shard)))
        return state
    if (path / "pytorch_model.bin").is_file():
        return safe_load(path / "pytorch_model.bin")
    raise WeightLoadError(f"{path}: no model.safetensors or pytorch_model.bin")


def build_xlsr(ssl_path: str | None, ssl_size: str = "xlsr_300m", trust_pickle: bool = False) -> XLSR:
    """The XLS-R of a detector config: ``ssl_path`` (fairseq .pt, HF dir, state dict), else ``ssl_size``.

    ``ssl_path`` may also name a size (``"tiny"``). Random weights are only for tests and for a detector whose
    whole state dict (XLS-R included) is loaded afterwards.
    """
    if ssl_path in (None, "") or str(ssl_path) in NAMED_SIZES:
        return XLSR.from_size(str(ssl_path or ssl_size))
    return XLSR.from_pretrained(ssl_path, trust_pickle=trust_pickle, size=ssl_size)


# the XLS-R options of a detector's model_config (see models/AASIST_WAV2VEC.py); defaults are the authors'
SSL_OPTIONS = {
    "ssl_path": Option(text, default=None, nullable=True),
    "ssl_size": Option(text, default="xlsr_300m", choices=tuple(NAMED_SIZES)),
    "trust_pickle": Option(boolean, default=False),
    "freeze_ssl": Option(boolean, default=False),
    "gradient_checkpointing": Option(boolean, default=False),
    "bf16_autocast": Option(boolean, default=False),
}


def xlsr_from_config(config: Mapping) -> XLSR:
    """The XLS-R front-end of a detector's options (read with ``SSL_OPTIONS``), its options applied."""
    ssl = build_xlsr(config["ssl_path"], config["ssl_size"], trust_pickle=config["trust_pickle"])
    ssl.bf16_autocast = config["bf16_autocast"]
    if config["freeze_ssl"]:
        freeze(ssl)  # no gradients, and eval mode whatever the detector's mode
    elif config["gradient_checkpointing"]:
        ssl.set_gradient_checkpointing(True)
    return ssl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Convert a fairseq wav2vec 2.0 / XLS-R checkpoint to a HF directory"
    )
    parser.add_argument("source", help="fairseq .pt, HF directory or state-dict file")
    parser.add_argument("out_dir", help="directory to write (config.json + model.safetensors)")
    parser.add_argument(
        "--trust-pickle", action="store_true", help="allow checkpoints that pickle Namespace/DictConfig"
    )
    parser.add_argument(
        "--size", default="xlsr_300m", choices=sorted(NAMED_SIZES), help="structure of a bare state dict"
    )
    args = parser.parse_args(argv)
    model = XLSR.from_pretrained(args.source, trust_pickle=args.trust_pickle, size=args.size)
    model.save_pretrained(args.out_dir)
    print(f"wrote {args.out_dir} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)")


if __name__ == "__main__":
    main()

__all__ = [
    "NAMED_SIZES",
    "XLSR",
    "build_xlsr",
    "convert_detector_state",
    "xlsr_from_config",
    "fairseq_to_hf",
    "hf_config_from_fairseq",
    "load_checkpoint_file",
    "parse_conv_layers",
    "split_ssl_state",
]


def convert_detector_checkpoint(model_class, source: str, target: str, ssl_size: str = "xlsr_300m") -> None:
    """Write an authors' detector checkpoint (fairseq-named XLS-R inside) as a plain state dict of
    ``model_class``, checked by a strict load, so that later loads need no key map."""
    model = model_class({"ssl_path": None, "ssl_size": ssl_size})
    load_weights(model, source)  # load_weights applies the model's convert_state_dict
    torch.save(model.state_dict(), target)


def convert_checkpoint_main(model_class, description: str, argv: list[str] | None = None) -> None:
    """The ``python -m models.<Detector> SOURCE TARGET`` command of the XLS-R detectors."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("source", help="the authors' checkpoint")
    parser.add_argument("target", help="state dict to write")
    parser.add_argument("--ssl_size", default="xlsr_300m", choices=sorted(NAMED_SIZES))
    args = parser.parse_args(argv)
    convert_detector_checkpoint(model_class, args.source, args.target, args.ssl_size)
    print(f"wrote {args.target}")
