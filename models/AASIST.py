"""AASIST: audio anti-spoofing with integrated spectro-temporal graph attention (Jung et al., ICASSP 2022).

A re-implementation of github.com/clovaai/aasist ``models/AASIST.py`` (commit a04c9863) that keeps its
parameter names, so the official ``AASIST.pth`` / ``AASIST-L.pth`` load strictly, and its numerics (the parity
test checks the official outputs to 1e-4).

Pipeline: waveform (B, T) -> fixed mel-spaced sinc band-pass filters -> |.| and 3x3 max-pool -> BN + SELU ->
six 2-D residual blocks over (filter band x time) -> spectral nodes (max over time) and temporal nodes (max
over bands) -> GAT + graph pooling on each -> two heterogeneous stacking graph attention (HS-GAL) branches
with master nodes -> element-wise max of the branches -> max/mean readout (the 160-d embedding) -> 2 logits.

Building blocks for the other models (AASIST_WAV2VEC reuses the encoder and the graph back-end, AMSDF the
graph layers and the sinc front-end + encoder):
    SincConv, ResidualBlock, ResidualEncoder, GraphAttentionLayer, HtrgGraphAttentionLayer, GraphPool,
    AASISTGraphBackend (positional embedding + GAT-S/GAT-T + pooling + the two HS-GAL branches + readout).

Fast CPU path: the sinc front-end and the residual encoder have a second implementation, used for float32 on
CPU without autocast whenever nothing it computes needs a gradient. It computes the same function to float
rounding (~1e-6 on the logits): the symmetric sinc filters are applied as one half-size matrix product and
max-pooled chunk by chunk; the encoder runs chunk by chunk along time (so intermediates stay in cache) in a
transposed channels-last layout, with BatchNorm folded into the convolutions and SELU rewritten around the
cheaper exp2. The encoder takes it only when scoring (eval mode, no autograd). The sinc front-end has no trainable
parameters and the waveform needs no gradient, so it takes the chunked path in CPU *training* too. Autocast and
GPUs use the plain implementation, which mirrors the reference (less its discarded bn1, see ResidualBlock);
``set_fast_inference(model, False)`` selects it everywhere.
Independently of the path, attention weights that are denormal numbers are read as zero when no gradient needs
them (see ``_without_denormals``), and scoring on CPU gives the same logits on any number of threads (see
ONE_THREAD_PIECE and ``_one_thread_when_scoring``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antispoof.runtime import one_intra_op_thread
from models.options import NB_SAMP_OPTION, Option, aasist_filts, integer, list_of, number, read_options

# Elements per intermediate tensor in the chunked CPU path (4 MB of float32), chosen by measurement on a 2-core
# machine with the heap kept (antispoof.runtime.keep_freed_memory). One batch on two threads: 1 << 19 and 1 << 20
# tie, 1 << 21 is 6-8 % and 1 << 17 ~20 % slower. One thread per batch (the scoring loop's default on a CPU):
# 1 << 18 to 1 << 21 tie, 1 << 17 is slower. Smaller chunks multiply the number of operations, each a parallel
# region when a batch has several threads, so the larger of the ties is kept.
CHUNK_ELEMENTS = 1 << 20
SELU_ALPHA = 1.6732632423543772848170429916717  # torch.nn.SELU's constants
SELU_SCALE = 1.0507009873554804934193349852946
LOG2_E = 1.4426950408889634073599246810019  # exp(u) = exp2(u * LOG2_E)
# ATen's exp2 and expm1 (in SELU) have vector and scalar code paths that differ in the last bit, and where a thread's
# range starts decides which path an element takes. A tensor of at most ATen's grain size (32768 elements) runs on
# one thread, so applied in pieces of that size they give one thread's result on any number of threads.
ONE_THREAD_PIECE = 32768


def _one_thread_pieces(x: Tensor) -> tuple[Tensor, ...]:
    """Views of contiguous ``x`` flattened, in pieces of ONE_THREAD_PIECE elements."""
    return x.view(-1).split(ONE_THREAD_PIECE)


def selu_(x: Tensor) -> Tensor:
    """SELU in place; on CPU, when no gradient is needed, the same on any number of threads (see ONE_THREAD_PIECE)."""
    if (torch.is_grad_enabled() and x.requires_grad) or x.device.type != "cpu" or not x.is_contiguous():
        return F.selu(x, inplace=True)
    for piece in _one_thread_pieces(x):
        F.selu(piece, inplace=True)
    return x


def _fast_path_applies(module: nn.Module, x: Tensor) -> bool:
    """Whether the chunked CPU implementation may replace the plain one for this call: float32 on CPU, no
    autocast, and no autograd (it uses in-place operations and BatchNorm folded with running statistics)."""
    if not getattr(module, "fast_inference", False) or x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in module.parameters())):
        return False
    return True


def set_fast_inference(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Turn the chunked CPU inference path of every AASIST block in ``model`` on or off."""
    for module in model.modules():
        if hasattr(module, "fast_inference"):
            module.fast_inference = enabled
    return model


# ------------------------------------------------------------------------------------------------------------
# Front-end
# ------------------------------------------------------------------------------------------------------------


def mel_band_pass_filters(n_filters: int, kernel_size: int, sample_rate: int = 16000) -> Tensor:
    """Hamming-windowed ideal band-pass filters whose band edges are equally spaced on the mel scale.

    The bands tile 0 .. sample_rate/2 (RawNet2's fixed "sinc" filters). ``kernel_size`` must be odd. Returns
    float32 (n_filters, kernel_size), bit-identical to the reference: it evaluates the sinc arguments in
    float32 and the band scales in float64, and the fixed filters' rounding visibly moves AASIST-L's outputs
    (~1e-4).
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    edges_mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + (sample_rate / 2) / 700.0), n_filters + 1)
    edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    # tap offsets from the centre tap, in float32 like the reference
    offsets = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) // 2

    def low_pass(cutoff_hz: float) -> np.ndarray:
        argument = (offsets * float(2.0 * cutoff_hz)) / sample_rate  # float32
        return (2.0 * cutoff_hz / sample_rate) * np.sinc(argument.numpy())  # float64 x float32 -> float64

    bands = np.stack([low_pass(high) - low_pass(low) for low, high in zip(edges_hz[:-1], edges_hz[1:])])
    filters = torch.from_numpy(bands).float() * torch.from_numpy(np.hamming(kernel_size)).float()
    # The fast front-end relies on exact symmetry (linear phase). The sinc part is symmetric; np.hamming may
    # be off by an ulp for some lengths, so average with the mirror image (a bit-exact no-op when symmetric).
    return 0.5 * (filters + filters.flip(-1))


class SincConv(nn.Module):
    """Fixed (not learned) mel-spaced band-pass filter bank applied to a raw waveform.

    ``SincConv(out_channels, kernel_size, sample_rate=16000)``; an even ``kernel_size`` is bumped to the next
    odd number as in the reference (128 -> 129 taps). The filters are a non-persistent buffer: the official
    state dict has no key for them and they depend only on these arguments.

    ``forward(x, freq_mask=False)``: (B, T) or (B, 1, T) -> (B, out_channels, T - K + 1) (valid convolution).
    ``pooled_magnitude(x, pool_size=(3, 3), freq_mask=False)``: max_pool2d(|forward(x)|) as (B, 1, bands,
    frames), AASIST's front-end; computed without materialising the full filter output on CPU.
    ``freq_mask=True`` is AASIST's frequency augmentation: a random run of 0..19 adjacent filters is zeroed
    for the whole batch.
    """

    def __init__(self, out_channels: int, kernel_size: int, sample_rate: int = 16000, in_channels: int = 1):
        super().__init__()
        if in_channels != 1:
            raise ValueError(f"SincConv takes a single waveform channel, got in_channels={in_channels}")
        self.out_channels = out_channels
        self.kernel_size = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
        self.sample_rate = sample_rate
        self.fast_inference = True
        filters = mel_band_pass_filters(out_channels, self.kernel_size, sample_rate)
        self.register_buffer("filters", filters.unsqueeze(1), persistent=False)  # (C, 1, K) as conv1d wants

    def extra_repr(self) -> str:
        return f"{self.out_channels}, kernel_size={self.kernel_size}, sample_rate={self.sample_rate}"

    def masked_filters(self) -> Tensor:
        """The filters with a random band of 0..19 adjacent filters zeroed (the reference's distribution)."""
        width = int(torch.randint(0, 20, ()))
        start = int(torch.randint(0, self.out_channels - width + 1, ()))
        filters = self.filters.clone()
        filters[start : start + width] = 0
        return filters

    def _as_batch(self, x: Tensor) -> Tensor:
        if x.dim() == 3 and x.size(1) == 1:
            x = x.squeeze(1)
        if x.dim() != 2:
            raise ValueError(
                f"SincConv expects a waveform batch (B, T) or (B, 1, T), got shape {tuple(x.shape)}"
            )
        if x.size(1) < self.kernel_size:
            raise ValueError(f"SincConv needs at least {self.kernel_size} samples, got {x.size(1)}")
        return x

    def forward(self, x: Tensor, freq_mask: bool = False) -> Tensor:
        x = self._as_batch(x)
        filters = self.masked_filters() if freq_mask else self.filters
        return F.conv1d(x.unsqueeze(1), filters)

    def pooled_magnitude(
        self, x: Tensor, pool_size: Sequence[int] = (3, 3), freq_mask: bool = False
    ) -> Tensor:
        x = self._as_batch(x)
        filters = self.masked_filters() if freq_mask else self.filters
        if _fast_path_applies(self, x) and filters.dtype == torch.float32:
            return self._pooled_magnitude_chunked(x, filters[:, 0], tuple(pool_size))
        return F.max_pool2d(F.conv1d(x.unsqueeze(1), filters).abs().unsqueeze(1), tuple(pool_size))

    def _pooled_magnitude_chunked(self, x: Tensor, filters: Tensor, pool_size: tuple[int, int]) -> Tensor:
        band_pool, time_pool = pool_size
        # max-pooling floors: filters past the last full group of band_pool never reach the output
        n_bands = self.out_channels // band_pool
        filters = filters[: n_bands * band_pool]
        # Linear phase: h[k] == h[K-1-k], so y[n] = sum_{k<c} h[k] (x[n+k] + x[n+K-1-k]) + h[c] x[n+c] with c
        # the centre tap; summing the mirrored samples first halves the multiply-adds of the convolution.
        centre = self.kernel_size // 2
        half_filters = filters[:, : centre + 1].contiguous()
        batch, n_samples = x.shape
        n_frames = (n_samples - self.kernel_size + 1) // time_pool
        out = x.new_empty(batch, 1, n_bands, n_frames)
        frames_per_chunk = max(1, CHUNK_ELEMENTS // (max(batch, 1) * filters.size(0) * time_pool))
        for first in range(0, n_frames, frames_per_chunk):
            last = min(n_frames, first + frames_per_chunk)
            length = (last - first) * time_pool
            start = first * time_pool
            segment = x[:, start : start + length + self.kernel_size - 1]
            taps = segment.unfold(1, length, 1)  # (B, K, L) view: taps[b, k, n] = segment[b, n + k]
            paired = taps[:, : centre + 1].clone()
            paired[:, :centre] += taps[:, centre + 1 :].flip(1)
            response = torch.matmul(half_filters, paired).abs_()  # (B, n_bands * band_pool, L)
            # max over each band group, then over each run of frames; as two strided maxima this is several
            # times faster than one amax over the two small dimensions
            pooled = _max_over_runs(response.view(batch, n_bands, band_pool, length), dim=2)
            out[:, 0, :, first:last] = _max_over_runs(
                pooled.reshape(batch, n_bands, last - first, time_pool), dim=3
            )
        return out


def _max_over_runs(x: Tensor, dim: int, out: Tensor | None = None) -> Tensor:
    """x.amax(dim) for a short dim, as an element-wise maximum of its slices (vectorises over the rest)."""
    if x.size(dim) == 1:
        return x.select(dim, 0) if out is None else out.copy_(x.select(dim, 0))
    result = torch.maximum(x.select(dim, 0), x.select(dim, 1), out=out)
    for i in range(2, x.size(dim)):
        result = torch.maximum(result, x.select(dim, i), out=result)
    return result


# ------------------------------------------------------------------------------------------------------------
# Residual encoder
# ------------------------------------------------------------------------------------------------------------


def _fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weights and bias of ``bn(conv(x))`` as one convolution (eval mode: BN is a fixed affine map)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = (conv.bias - bn.running_mean) * scale + bn.bias
    return weight, bias


class ResidualBlock(nn.Module):
    """The RawNet2-style residual block of AASIST's encoder, over (channels, bands, frames) maps.

    ``ResidualBlock(in_channels, out_channels, first=False, pool_size=(1, 3))``:
    conv1 (2x3, pad 1) -> BN -> SELU -> conv2 (2x3, pad (0, 1)), plus the input (through a 1x3 conv when the
    channel count changes), then max-pooling ``pool_size`` (None: no pooling, as in SSL_Anti-spoofing's copy).
    The band count is preserved (conv1 adds a row, conv2 removes it).

    Faithful to the reference, the input's own BN + SELU (``bn1``, present unless ``first``) is NOT applied:
    the reference computes it and then feeds the raw input to conv1. ``bn1`` is kept so the official weights
    load; it is not evaluated, so its running statistics stay as loaded (they never affect any output).
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool = False, pool_size=(1, 3)):
        super().__init__()
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1))
        self.selu = nn.SELU(inplace=True)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1))
        self.conv_downsample = (
            nn.Conv2d(in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1))
            if in_channels != out_channels
            else None
        )
        self.pool_size = tuple(pool_size) if pool_size is not None else None
        self.mp = nn.MaxPool2d(self.pool_size) if pool_size is not None else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.selu(self.bn2(self.conv1(x))))
        out = out + (self.conv_downsample(x) if self.conv_downsample is not None else x)
        return self.mp(out) if self.mp is not None else out

    # ---- chunked CPU inference (eval mode, no autograd) ----------------------------------------------------
    # Layout: (B, C, frames, bands) channels-last, i.e. the bands x frames maps transposed and stored
    # (utterance, frame, band, channel): a run of frames is one slab per utterance, and the kernels are
    # transposed to (3, 2) to match. Chunks span the whole batch and a run of frames, so every operation works
    # on a cache-sized tensor and there are few of them (each is a parallel region: on a loaded machine their
    # count, not their size, sets the cost).

    def supports_chunked_inference(self) -> bool:
        # time chunks are independent only when pooling does not mix bands
        return self.pool_size is None or self.pool_size[0] == 1

    def forward_chunked(self, x: Tensor) -> Tensor:
        """Eval forward in the transposed layout: (B, C_in, frames, bands) channels-last -> the same layout.

        Output frames [p, q) need pre-pool frames [P p, P q), which need conv1/SELU outputs at
        [P p - 1, P q + 1) and inputs at [P p - 2, P q + 2); positions outside the signal are the
        convolutions' zero padding.
        """
        # conv1 computes v = LOG2_E * u, u being BN(conv1(x)), and its activation LOG2_E * (ELU(u) + alpha) =
        # LOG2_E * (SELU(u) / scale + alpha) (see _shifted_elu_); conv2 takes scale / LOG2_E into its weights and
        # the shift into its bias, and the shortcut's bias joins it
        conv1_weight, conv1_bias = (t * LOG2_E for t in _fold_batchnorm(self.conv1, self.bn2))
        conv1_weight = conv1_weight.transpose(2, 3).contiguous(memory_format=torch.channels_last)
        conv2_weight = self.conv2.weight * (SELU_SCALE / LOG2_E)
        conv2_bias = self.conv2.bias - SELU_ALPHA * LOG2_E * conv2_weight.sum(dim=(1, 2, 3))
        if self.conv_downsample is not None:
            conv2_bias = conv2_bias + self.conv_downsample.bias
        conv2_weight = conv2_weight.transpose(2, 3).contiguous(memory_format=torch.channels_last)
        batch, _, n_in, n_bands = x.shape
        pool = self.pool_size[1] if self.pool_size is not None else 1
        n_out = n_in // pool
        out_channels = conv2_weight.size(0)
        out = x.new_empty(batch, n_out, n_bands, out_channels)  # memory of (B, C, n_out, bands) channels-last
        frames_per_chunk = max(1, CHUNK_ELEMENTS // (max(batch, 1) * out_channels * (n_bands + 1) * pool))
        # one scratch buffer for the activation's negative part, reused by every chunk (a fresh one per chunk
        # would cost more than the arithmetic it holds)
        scratch = x.new_empty(batch * (pool * frames_per_chunk + 2) * (n_bands + 1) * out_channels)
        for first in range(0, n_out, frames_per_chunk):
            last = min(n_out, first + frames_per_chunk)
            lo, hi = pool * first - 2, pool * last + 2  # input frames this chunk reads
            segment = _frame_range(x, lo, hi)
            hidden = self._conv1(segment, conv1_weight, conv1_bias)  # frames [lo + 1, hi - 1)
            _shifted_elu_(hidden, scratch[: hidden.numel()])
            # conv2 pads with zeros (not with SELU(BN(conv1(0)))), i.e. with LOG2_E * alpha in the activation
            if lo + 1 < 0:
                hidden[:, :, : -(lo + 1)] = SELU_ALPHA * LOG2_E
            if hi - 1 > n_in:
                hidden[:, :, n_in - (hi - 1) :] = SELU_ALPHA * LOG2_E
            res = F.conv2d(hidden, conv2_weight, conv2_bias)  # frames [lo + 2, hi - 2) = [P p, P q)
            self._add_shortcut_(res, segment)
            res = res.permute(0, 2, 3, 1)  # (B, frames, bands, C), contiguous
            if pool > 1:
                _max_over_runs(res.unflatten(1, (last - first, pool)), dim=2, out=out[:, first:last])
            else:
                out[:, first:last] = res
        return out.permute(0, 3, 1, 2)

    def _conv1(self, segment: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """The BN-folded conv1 over a chunk (frames not padded, bands padded by one), channels-last."""
        if weight.size(1) > 1:
            return F.conv2d(segment, weight, bias, padding=(0, 1))
        # oneDNN is several times slower for one input channel than for 32: use im2col + GEMM, which also
        # yields the channels-last output directly
        batch, n_frames, n_bands = segment.size(0), segment.size(2) - 2, segment.size(3) + 1
        image = F.pad(segment[:, 0], (1, 1))  # (B, frames, bands + 2)
        columns = _im2col(image, n_frames, n_bands, kernel=weight.shape[2:])
        out = torch.addmm(bias, columns, weight.reshape(weight.size(0), -1).t())  # (B * frames * bands, C)
        return out.view(batch, n_frames, n_bands, weight.size(0)).permute(0, 3, 1, 2)

    def _add_shortcut_(self, res: Tensor, segment: Tensor) -> None:
        """res += shortcut(segment), res covering the segment's frames [2, n - 2)."""
        if self.conv_downsample is None:
            res += segment[:, :, 2:-2]
            return
        weight = self.conv_downsample.weight.transpose(2, 3)  # (C, C_in, 3, 1); its bias is in conv2's
        if weight.size(1) > 1:
            res += F.conv2d(segment[:, :, 1:-1], weight.contiguous(memory_format=torch.channels_last))
            return
        # one input channel: accumulate the 3x1 convolution as a GEMM straight into res, whose channels-last
        # memory is a (B * frames * bands, C) matrix
        n_frames, n_bands = res.shape[2:]
        columns = _im2col(segment[:, 0, 1:-1], n_frames, n_bands, kernel=weight.shape[2:])
        res.permute(0, 2, 3, 1).view(-1, res.size(1)).addmm_(columns, weight.reshape(weight.size(0), -1).t())


def _shifted_elu_(v: Tensor, scratch: Tensor) -> Tensor:
    """In place, for v = LOG2_E * u: LOG2_E * (ELU(u, alpha) + alpha) = max(v, 0) + alpha * LOG2_E * exp2(min(v, 0)),
    alpha being SELU's. ``v`` is a channels-last conv output; ``scratch`` (flat, v's size) holds the negative part.

    Several times faster on CPU than ``F.elu_``, which evaluates expm1 (~3x slower than exp, itself ~3x slower than
    exp2 on AVX-512); the caller absorbs the constant shift, SELU's scale and LOG2_E into the next convolution.
    """
    negative_part = scratch.view(v.size(0), v.size(2), v.size(3), v.size(1)).permute(0, 3, 1, 2)
    torch.clamp_max(v, 0, out=negative_part)
    for piece in _one_thread_pieces(scratch):  # the same logits on any number of threads
        piece.exp2_()
    return v.clamp_min_(0).add_(negative_part, alpha=SELU_ALPHA * LOG2_E)


def _frame_range(x: Tensor, lo: int, hi: int) -> Tensor:
    """Frames [lo, hi) of a (B, C, frames, bands) channels-last map, zero outside it (a view when inside)."""
    n_frames = x.size(2)
    if lo >= 0 and hi <= n_frames:
        return x[:, :, lo:hi]
    segment = x.new_empty(x.size(0), hi - lo, x.size(3), x.size(1))  # memory of (B, C, hi - lo, bands)
    inside_lo, inside_hi = max(lo, 0), min(hi, n_frames)
    segment[:, : inside_lo - lo] = 0
    segment[:, inside_hi - lo :] = 0
    segment[:, inside_lo - lo : inside_hi - lo] = x[:, :, inside_lo:inside_hi].permute(0, 2, 3, 1)
    return segment.permute(0, 3, 1, 2)


def _im2col(image: Tensor, n_rows: int, n_cols: int, kernel: Sequence[int]) -> Tensor:
    """(B * n_rows * n_cols, kh * kw) patches of a batch of 2-D maps (B, rows, cols) for a valid convolution;
    column r * kw + c holds image[b, i + r, j + c], matching ``weight.reshape(C_out, -1)`` of a one-channel
    (kh, kw) kernel."""
    kernel_rows, kernel_cols = kernel
    shifted = [
        image[:, r : r + n_rows, c : c + n_cols] for r in range(kernel_rows) for c in range(kernel_cols)
    ]
    return torch.stack(shifted, dim=-1).view(-1, kernel_rows * kernel_cols)


class ResidualEncoder(nn.Sequential):
    """AASIST's encoder: six residual blocks; ``filts`` gives the (in, out) channels of the first four, the
    fourth pair is repeated for blocks five and six. Layout and names follow the reference
    (``encoder.<i>.0.<layer>``) so its weights load.

    ``ResidualEncoder(filts, pool_size=(1, 3))``, e.g. filts = [[1, 32], [32, 32], [32, 64], [64, 64]];
    pool_size=None gives SSL_Anti-spoofing's encoder (no pooling in the blocks).
    Input (B, filts[0][0], bands, frames) -> (B, filts[-1][1], bands, frames // 3**6).
    """

    def __init__(self, filts: Sequence[Sequence[int]], pool_size=(1, 3)):
        if len(filts) != 4 or not all(len(pair) == 2 for pair in filts):
            raise ValueError(f"ResidualEncoder takes four [in, out] channel pairs, got {filts!r}")
        pairs = [filts[0], filts[1], filts[2], filts[3], filts[3], filts[3]]
        blocks = [
            nn.Sequential(ResidualBlock(c_in, c_out, first=(i == 0), pool_size=pool_size))
            for i, (c_in, c_out) in enumerate(pairs)
        ]
        super().__init__(*blocks)
        self.fast_inference = True

    def blocks(self) -> list[ResidualBlock]:
        return [wrapper[0] for wrapper in self]

    def forward(self, x: Tensor) -> Tensor:
        blocks = self.blocks()
        if (
            not self.training
            and _fast_path_applies(self, x)
            and all(block.supports_chunked_inference() for block in blocks)
            and all(p.dtype == torch.float32 for p in self.parameters())
        ):
            # the chunked path's layout: bands x frames maps transposed (see ResidualBlock.forward_chunked)
            x = x.transpose(2, 3).contiguous(memory_format=torch.channels_last)
            for block in blocks:
                x = block.forward_chunked(x)
            return x.transpose(2, 3).contiguous()
        for block in blocks:
            x = block(x)
        return x


# ------------------------------------------------------------------------------------------------------------
# Graph layers
# ------------------------------------------------------------------------------------------------------------


def _xavier_parameter(*size: int) -> nn.Parameter:
    weight = nn.Parameter(torch.empty(*size))
    nn.init.xavier_normal_(weight)
    return weight


def _batchnorm_nodes(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """BatchNorm over every node of every graph: (B, N, D) treated as B*N samples of D features."""
    return bn(x.reshape(-1, x.size(-1))).view_as(x)


def _without_denormals(weight: Tensor) -> Tensor:
    """``weight`` with denormal entries read as zero, unless autograd needs the original.

    The official AASIST weights hold thousands of denormal numbers in the HS-GAL attention (decayed towards
    zero during training), and x86 arithmetic on denormals is ~50x slower: the (B, N, N, D) attention
    projections took most of the graph back-end's time. Values below 1.2e-38 change no float32 output here
    (the scores stay far below the softmax's resolution).
    """
    if torch.is_grad_enabled() and weight.requires_grad:
        return weight
    return torch.where(weight.abs() < torch.finfo(weight.dtype).tiny, 0.0, weight)


def _attention_projection(layer: nn.Linear, x: Tensor) -> Tensor:
    return F.linear(x, _without_denormals(layer.weight), _without_denormals(layer.bias))


def _pairwise_products(x: Tensor) -> Tensor:
    """(B, N, D) -> (B, N, N, D), [b, i, j] = x[b, i] * x[b, j]: the edge features the attention scores."""
    return x.unsqueeze(2) * x.unsqueeze(1)


class GraphAttentionLayer(nn.Module):
    """Graph attention over a fully connected graph (AASIST's GAT).

    ``GraphAttentionLayer(in_dim, out_dim, temperature=1.0)``; forward (B, N, in_dim) -> (B, N, out_dim).
    Attention score of edge (i, j): w . tanh(W_a (x_i * x_j)) / temperature, softmax over j; the output is
    SELU(BN(W_1 sum_j a_ij x_j + W_2 x_i)). Inputs get dropout 0.2 in training.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _xavier_parameter(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU(inplace=True)
        self.temp = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_drop(x)
        attention = self.attention_map(x)
        x = self.proj_with_att(torch.matmul(attention, x)) + self.proj_without_att(x)
        return self.act(_batchnorm_nodes(self.bn, x))

    def attention_map(self, x: Tensor) -> Tensor:
        """(B, N, N) attention weights; each row sums to one."""
        hidden = torch.tanh(_attention_projection(self.att_proj, _pairwise_products(x)))  # (B, N, N, out_dim)
        scores = torch.matmul(hidden, _without_denormals(self.att_weight)).squeeze(-1)
        return F.softmax(scores / self.temp, dim=-1)


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention over two node types plus a master node (AASIST's HS-GAL).

    ``HtrgGraphAttentionLayer(in_dim, out_dim, temperature=1.0)``;
    ``forward(x1, x2, master=None, return_attention=False)`` with x1 (B, N1, in_dim), x2 (B, N2, in_dim),
    master (B or 1, 1, in_dim) (None: the mean of all projected nodes) -> (x1', x2', master') with out_dim
    features, plus the (B, N1+N2, N1+N2) attention map when ``return_attention`` (AMSDF reads it). Each node
    type gets its own input projection; edges inside type 1, inside type 2 and across types have their own
    attention vectors. The master node attends to all nodes and is updated from them.
    """

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _xavier_parameter(out_dim, 1)
        self.att_weight22 = _xavier_parameter(out_dim, 1)
        self.att_weight12 = _xavier_parameter(out_dim, 1)
        self.att_weightM = _xavier_parameter(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU(inplace=True)
        self.temp = float(temperature)

    def forward(self, x1: Tensor, x2: Tensor, master: Tensor | None = None, return_attention: bool = False):
        n_type1 = x1.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        if master is None:
            master = x.mean(dim=1, keepdim=True)
        x = self.input_drop(x)
        attention = self.attention_map(x, n_type1)
        master = self._update_master(x, master)
        x = self.proj_with_att(torch.matmul(attention, x)) + self.proj_without_att(x)
        x = self.act(_batchnorm_nodes(self.bn, x))
        outputs = (x[:, :n_type1], x[:, n_type1:], master)
        return (*outputs, attention) if return_attention else outputs

    def attention_map(self, x: Tensor, n_type1: int) -> Tensor:
        """(B, N, N) attention weights, the score vector chosen by the types of the edge's two ends."""
        hidden = torch.tanh(_attention_projection(self.att_proj, _pairwise_products(x)))  # (B, N, N, out_dim)
        # column 0: both ends type 1; 1: mixed; 2: both type 2
        vectors = torch.cat([self.att_weight11, self.att_weight12, self.att_weight22], dim=1)
        vectors = _without_denormals(vectors)
        scores = torch.matmul(hidden, vectors)  # (B, N, N, 3)
        is_type2 = (torch.arange(x.size(1), device=x.device) >= n_type1).long()
        edge_type = (is_type2.unsqueeze(1) + is_type2.unsqueeze(0)).expand(scores.shape[:-1])
        scores = scores.gather(-1, edge_type.unsqueeze(-1)).squeeze(-1)
        return F.softmax(scores / self.temp, dim=-1)

    def _update_master(self, x: Tensor, master: Tensor) -> Tensor:
        hidden = torch.tanh(_attention_projection(self.att_projM, x * master))
        scores = torch.matmul(hidden, _without_denormals(self.att_weightM))  # (B, N, 1)
        attention = F.softmax(scores / self.temp, dim=1)
        attended = torch.matmul(attention.transpose(1, 2), x)  # (B, 1, in_dim)
        return self.proj_with_attM(attended) + self.proj_without_attM(master)


class GraphPool(nn.Module):
    """Graph pooling: keep the top ``ratio`` of nodes by a learned sigmoid score, scaled by that score.

    ``GraphPool(ratio, in_dim, dropout)``; (B, N, D) -> (B, max(int(N * ratio), 1), D), nodes in descending
    score order. ``dropout`` applies to the scorer's input in training.
    """

    def __init__(self, ratio: float, in_dim: int, dropout: float):
        super().__init__()
        self.k = ratio
        self.sigmoid = nn.Sigmoid()
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.in_dim = in_dim

    def forward(self, h: Tensor) -> Tensor:
        scores = self.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        n_keep = max(int(h.size(1) * self.k), 1)
        _, index = torch.topk(scores, n_keep, dim=1)
        return torch.gather(h * scores, 1, index.expand(-1, -1, h.size(2)))


def _one_thread_when_scoring(x: Tensor) -> AbstractContextManager:
    """One intra-op thread for the block when ``x`` is on the CPU and autograd is off.

    MKL picks different kernels for one and for several threads even for 23 x 24 products, so the graph back-end's
    logits would depend on the thread count, and scores must not (a torchrun rank runs one thread, a single process
    several). Its products are tiny: one thread costs ~5 ms per batch of 8 utterances.
    """
    if x.device.type != "cpu" or torch.is_grad_enabled():
        return nullcontext()
    return one_intra_op_thread()


class AASISTGraphBackend(nn.Module):
    """AASIST's graph back-end: everything after the encoder, as a base class.

    ``AASISTGraphBackend(in_dim, gat_dims, pool_ratios, temperatures, n_spectral_nodes)`` creates, with the
    reference's names (so a subclass's state dict matches the official one): ``pos_S`` (positional embedding
    of the spectral nodes), ``GAT_layer_S``/``GAT_layer_T`` (temperatures[0], [1]), ``pool_S``/``pool_T``
    (pool_ratios[0], [1]), master nodes ``master1``/``master2``, two HS-GAL branches ``HtrgGAT_layer_ST11`` ->
    ``ST12`` and ``ST21`` -> ``ST22`` (temperatures[2]) with pooling ``pool_hS1``, ``pool_hT1``, ``pool_hS2``,
    ``pool_hT2`` (pool_ratios[2]) and ``out_layer``. temperatures[3] and pool_ratios[3] are unused, as in the
    reference.

    ``graph_backend(spectral, temporal)``: spectral (B, n_spectral_nodes, in_dim), temporal (B, N_t, in_dim)
    -> (embedding (B, 5 * gat_dims[1]), logits (B, 2)). The embedding is [max|T|, mean T, max|S|, mean S,
    master] of the element-wise max of the two branches.
    """

    def __init__(
        self,
        in_dim: int,
        gat_dims: Sequence[int],
        pool_ratios: Sequence[float],
        temperatures: Sequence[float],
        n_spectral_nodes: int,
    ):
        super().__init__()
        gat_in, gat_out = gat_dims
        self.pos_S = nn.Parameter(torch.randn(1, n_spectral_nodes, in_dim))
        self.master1 = nn.Parameter(torch.randn(1, 1, gat_in))
        self.master2 = nn.Parameter(torch.randn(1, 1, gat_in))
        self.GAT_layer_S = GraphAttentionLayer(in_dim, gat_in, temperature=temperatures[0])
        self.GAT_layer_T = GraphAttentionLayer(in_dim, gat_in, temperature=temperatures[1])
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(gat_in, gat_out, temperature=temperatures[2])
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(gat_out, gat_out, temperature=temperatures[2])
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(gat_in, gat_out, temperature=temperatures[2])
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(gat_out, gat_out, temperature=temperatures[2])
        self.pool_S = GraphPool(pool_ratios[0], gat_in, 0.3)
        self.pool_T = GraphPool(pool_ratios[1], gat_in, 0.3)
        self.pool_hS1 = GraphPool(pool_ratios[2], gat_out, 0.3)
        self.pool_hT1 = GraphPool(pool_ratios[2], gat_out, 0.3)
        self.pool_hS2 = GraphPool(pool_ratios[2], gat_out, 0.3)
        self.pool_hT2 = GraphPool(pool_ratios[2], gat_out, 0.3)
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        self.out_layer = nn.Linear(5 * gat_out, 2)

    def graph_backend(self, spectral: Tensor, temporal: Tensor) -> tuple[Tensor, Tensor]:
        if spectral.size(1) != self.pos_S.size(1):
            raise ValueError(
                f"expected {self.pos_S.size(1)} spectral nodes (the positional embedding's size), "
                f"got {spectral.size(1)}"
            )
        with _one_thread_when_scoring(spectral):
            return self._graph_backend(spectral, temporal)

    def _graph_backend(self, spectral: Tensor, temporal: Tensor) -> tuple[Tensor, Tensor]:
        nodes_S = self.pool_S(self.GAT_layer_S(spectral + self.pos_S))
        nodes_T = self.pool_T(self.GAT_layer_T(temporal))
        batch = spectral.size(0)
        branch1 = self._hsgal_branch(
            nodes_T, nodes_S, self.master1.expand(batch, -1, -1),
            self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hT1, self.pool_hS1,
        )  # fmt: skip
        branch2 = self._hsgal_branch(
            nodes_T, nodes_S, self.master2.expand(batch, -1, -1),
            self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hT2, self.pool_hS2,
        )  # fmt: skip
        # the two branches are fused by an element-wise max (after branch dropout in training)
        fused = (torch.max(self.drop_way(a), self.drop_way(b)) for a, b in zip(branch1, branch2))
        out_T, out_S, master = fused
        embedding = torch.cat(
            [
                out_T.abs().amax(dim=1),
                out_T.mean(dim=1),
                out_S.abs().amax(dim=1),
                out_S.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )
        return embedding, self.out_layer(self.drop(embedding))

    @staticmethod
    def _hsgal_branch(nodes_T, nodes_S, master, first_layer, second_layer, pool_T, pool_S):
        """Two stacked HS-GALs (temporal nodes are type 1); the second adds a residual update."""
        out_T, out_S, master = first_layer(nodes_T, nodes_S, master=master)
        out_S = pool_S(out_S)  # S before T: the reference's order of dropout draws in training
        out_T = pool_T(out_T)
        aug_T, aug_S, aug_master = second_layer(out_T, out_S, master=master)
        return out_T + aug_T, out_S + aug_S, master + aug_master


# ------------------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------------------

OPTIONS = {
    "filts": Option(aasist_filts),  # [sinc filters, [1, c1], [c1, c2], [c2, c3], [c3, c3]]
    "first_conv": Option(integer, note="sinc kernel size"),
    "gat_dims": Option(list_of(integer, 2)),
    "pool_ratios": Option(list_of(number, 4)),
    "temperatures": Option(list_of(number, 4)),
    "nb_samp": NB_SAMP_OPTION,  # read by the data pipeline; the model takes any length above min_samples
}
BAND_POOL = 3  # the front-end's 3x3 max-pool
TIME_POOL = 3
N_BLOCKS = 6  # residual blocks, each pooling time by 3


class Model(AASISTGraphBackend):
    """AASIST. ``model_config`` (``OPTIONS``): filts [n_sinc_filters, [1, c1], [c1, c2], [c2, c3], [c3, c3]],
    first_conv (sinc kernel size), gat_dims [d1, d2], pool_ratios (4), temperatures (4); nb_samp is the data
    pipeline's.

    ``forward(x, Freq_aug=False)``: waveform (B, T) at 16 kHz -> (embedding (B, 5 * d2), logits (B, 2)).
    """

    def __init__(self, model_config: dict):
        options = read_options(model_config, OPTIONS, "AASIST model_config")
        filts = options["filts"]
        super().__init__(
            in_dim=filts[-1][-1],
            gat_dims=options["gat_dims"],
            pool_ratios=options["pool_ratios"],
            temperatures=options["temperatures"],
            n_spectral_nodes=filts[0] // BAND_POOL,
        )
        self.conv_time = SincConv(out_channels=filts[0], kernel_size=options["first_conv"])
        self.first_bn = nn.BatchNorm2d(num_features=1)
        self.encoder = ResidualEncoder(filts[1:])
        self.min_samples = self.conv_time.kernel_size - 1 + TIME_POOL * 3**N_BLOCKS

    def forward(self, x: Tensor, Freq_aug: bool = False) -> tuple[Tensor, Tensor]:
        if x.dim() != 2:
            raise ValueError(f"AASIST expects a waveform batch (B, T), got shape {tuple(x.shape)}")
        if x.size(1) < self.min_samples:
            raise ValueError(
                f"AASIST needs at least {self.min_samples} samples per utterance, got {x.size(1)}"
            )
        feats = self.conv_time.pooled_magnitude(x, (BAND_POOL, TIME_POOL), freq_mask=Freq_aug)
        feats = selu_(self.first_bn(feats))  # (B, 1, bands, frames)
        encoded = self.encoder(feats).abs()  # (B, C, bands, frames / 3**6)
        spectral = encoded.amax(dim=3).transpose(1, 2)  # (B, bands, C): max over time
        temporal = encoded.amax(dim=2).transpose(1, 2)  # (B, frames, C): max over bands
        return self.graph_backend(spectral, temporal)


__all__ = [
    "AASISTGraphBackend",
    "GraphAttentionLayer",
    "GraphPool",
    "HtrgGraphAttentionLayer",
    "Model",
    "ResidualBlock",
    "ResidualEncoder",
    "SincConv",
    "mel_band_pass_filters",
    "selu_",
    "set_fast_inference",
]
