"""Log-mel + delta + delta-delta front-end of the ACRNN emotion encoder, as a batched torch module.

Two recipes, each a faithful re-implementation (no torchaudio or python_speech_features at run time):

``logfbank``
    ``python_speech_features.logfbank(x, 16000, nfilt=40)`` then ``delta(., 2)`` once and twice: the recipe
    of the original 3-D CRNN recogniser and of AMSDF (the one the published ``ser_acrnn.pth`` was trained on).
    Pre-emphasis 0.97; 25 ms rectangular frames every 10 ms, the last one zero-padded; power spectrum
    ``|rfft(frame, 512)|^2 / 512``; 40 triangular mel filters whose edges are rounded to FFT bins; zero
    energies replaced by machine epsilon before the log.
``melspec``
    torchaudio ``MelSpectrogram(16000, n_fft=400, win_length=400, hop_length=160, n_mels=40, power=2)`` with
    its defaults (periodic Hann window, centred frames with reflect padding, HTK mel scale, no filter norm),
    then ``log(x + 1e-6)`` and ``compute_deltas`` (5-frame window, replicate padding) once and twice: the
    recipe of the upstream fusion models (akzykova/aasist_ser).

Both keep the first 300 frames and return ``(B, 3, 300, 40)``: (log-mel, delta, delta-delta) x time x band.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SAMPLE_RATE = 16000
NUM_BANDS = 40
NUM_FRAMES = 300
RECIPES = ("logfbank", "melspec")
DELTA_WIDTH = 2  # frames on each side; both recipes use a 5-frame regression window

# logfbank (python_speech_features defaults at 16 kHz)
PSF_FRAME = 400  # round(0.025 s * 16 kHz)
PSF_HOP = 160
PSF_NFFT = 512
PSF_PREEMPHASIS = 0.97
FLOAT64_EPS = 2.220446049250313e-16  # numpy.finfo(float).eps, what python_speech_features floors zeros to

# melspec (the torchaudio transform the upstream fusion models used)
MEL_NFFT = 400
MEL_HOP = 160
MEL_LOG_OFFSET = 1e-6


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale (both recipes use it)."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def psf_filterbank(
    num_bands: int = NUM_BANDS, nfft: int = PSF_NFFT, sample_rate: int = SAMPLE_RATE
) -> torch.Tensor:
    """python_speech_features' mel filterbank, (nfft // 2 + 1, num_bands) float64.

    Its filter corners are snapped to FFT bins first (``floor((nfft + 1) * hz / sample_rate)``), so the
    triangles are drawn on bin indices, not on frequencies.
    """
    edges_mel = torch.linspace(
        0.0,
        float(hz_to_mel(torch.tensor(sample_rate / 2, dtype=torch.float64))),
        num_bands + 2,
        dtype=torch.float64,
    )
    bins = torch.floor((nfft + 1) * mel_to_hz(edges_mel) / sample_rate).long().tolist()
    bank = torch.zeros(nfft // 2 + 1, num_bands, dtype=torch.float64)
    for band in range(num_bands):
        low, centre, high = bins[band], bins[band + 1], bins[band + 2]
        for i in range(low, centre):
            bank[i, band] = (i - low) / (centre - low)
        for i in range(centre, high):
            bank[i, band] = (high - i) / (high - centre)
    return bank


def htk_filterbank(
    num_bands: int = NUM_BANDS, nfft: int = MEL_NFFT, sample_rate: int = SAMPLE_RATE
) -> torch.Tensor:
    """torchaudio's ``melscale_fbanks`` (HTK, no norm, 0 Hz to Nyquist), (nfft // 2 + 1, bands) float64."""
    bin_hz = torch.linspace(0.0, sample_rate // 2, nfft // 2 + 1, dtype=torch.float64)
    top_mel = hz_to_mel(torch.tensor(sample_rate / 2, dtype=torch.float64))
    corners_hz = mel_to_hz(torch.linspace(0.0, float(top_mel), num_bands + 2, dtype=torch.float64))
    widths = corners_hz[1:] - corners_hz[:-1]
    offsets = corners_hz.unsqueeze(0) - bin_hz.unsqueeze(1)  # (bins, corners)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def deltas(features: torch.Tensor, width: int = DELTA_WIDTH) -> torch.Tensor:
    """Regression deltas along dim -2 (time) with edge-replicated padding.

    ``d[t] = sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2)``, n = 1..width: python_speech_features' ``delta`` and
    torchaudio's ``compute_deltas`` are the same formula.
    """
    frames = features.shape[-2]
    padded = torch.cat(
        [
            features[..., :1, :].expand(*features.shape[:-2], width, features.shape[-1]),
            features,
            features[..., -1:, :].expand(*features.shape[:-2], width, features.shape[-1]),
        ],
        dim=-2,
    )
    result = torch.zeros_like(features)
    for n in range(1, width + 1):
        result = result + n * (
            padded[..., width + n : width + n + frames, :] - padded[..., width - n : width - n + frames, :]
        )
    return result / (2 * sum(n * n for n in range(1, width + 1)))


class EmotionFeatures(nn.Module):
    """Waveform ``(B, T)`` at 16 kHz -> ``(B, 3, 300, 40)`` (log-mel, delta, delta-delta; time x band).

    Holds no weights (its filterbank and window are non-persistent buffers): it adds nothing to a state dict.
    """

    def __init__(self, recipe: str = "logfbank", num_frames: int = NUM_FRAMES):
        super().__init__()
        if recipe not in RECIPES:
            raise ValueError(f"unknown emotion feature recipe {recipe!r}; known: {', '.join(RECIPES)}")
        self.recipe = recipe
        self.num_frames = num_frames
        if recipe == "logfbank":
            self.register_buffer("filterbank", psf_filterbank(), persistent=False)
            self.min_samples = PSF_FRAME + (num_frames - 2) * PSF_HOP + 1
        else:
            self.register_buffer("filterbank", htk_filterbank().float(), persistent=False)
            self.register_buffer("window", torch.hann_window(MEL_NFFT, periodic=True), persistent=False)
            self.min_samples = (num_frames - 1) * MEL_HOP
        # deltas of deltas reach 2 * DELTA_WIDTH frames ahead: computing that many frames beyond the kept ones
        # gives the same values as computing all of them, at a fraction of the cost on long inputs
        self.frames_needed = num_frames + 2 * DELTA_WIDTH

    def extra_repr(self) -> str:
        return f"recipe={self.recipe!r}, num_frames={self.num_frames}"

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(
                f"emotion features expect a waveform batch (B, T), got shape {tuple(waveform.shape)}"
            )
        if waveform.shape[-1] < self.min_samples:
            seconds = self.min_samples / SAMPLE_RATE
            raise ValueError(
                f"emotion features need at least {self.min_samples} samples ({seconds:.2f} s at 16 kHz) for "
                f"{self.num_frames} frames, got {waveform.shape[-1]}"
            )
        # under mixed precision a float16 mel energy overflows (frame power reaches ~1e4 x 40 bins) and the
        # log of the weak bands loses its digits: the front-end always runs in full precision
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            log_mel = self._logfbank(waveform) if self.recipe == "logfbank" else self._log_melspec(waveform)
            delta1 = deltas(log_mel)
            delta2 = deltas(delta1)
            stacked = torch.stack([log_mel, delta1, delta2], dim=1)[:, :, : self.num_frames]
        return stacked.to(waveform.dtype)

    def _logfbank(self, waveform: torch.Tensor) -> torch.Tensor:
        # float64: python_speech_features works in float64 and the log of the weakest bands (e.g. far from a
        # pure tone) is sensitive to float32 FFT round-off; the cost is small next to the encoder
        signal = waveform.double()
        signal = torch.cat([signal[:, :1], signal[:, 1:] - PSF_PREEMPHASIS * signal[:, :-1]], dim=1)
        total = 1 + math.ceil((signal.shape[1] - PSF_FRAME) / PSF_HOP)
        frames = min(total, self.frames_needed)
        length = (frames - 1) * PSF_HOP + PSF_FRAME
        if signal.shape[1] < length:  # python_speech_features zero-pads the last frame
            signal = nn.functional.pad(signal, (0, length - signal.shape[1]))
        framed = signal[:, :length].unfold(1, PSF_FRAME, PSF_HOP)  # (B, frames, 400)
        power = torch.fft.rfft(framed, n=PSF_NFFT).abs().square() / PSF_NFFT
        energies = power @ self.filterbank.to(power.dtype)
        energies = torch.where(energies == 0, torch.full_like(energies, FLOAT64_EPS), energies)
        return torch.log(energies)

    def _log_melspec(self, waveform: torch.Tensor) -> torch.Tensor:
        signal = waveform.float()
        # frame t covers samples [160 t - 200, 160 t + 200): cropping there leaves the kept frames unchanged
        signal = signal[:, : (self.frames_needed - 1) * MEL_HOP + MEL_NFFT // 2]
        spectrum = torch.stft(
            signal,
            n_fft=MEL_NFFT,
            hop_length=MEL_HOP,
            win_length=MEL_NFFT,
            window=self.window.to(signal.dtype),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spectrum.abs().square()  # (B, bins, frames)
        mel = power.transpose(1, 2) @ self.filterbank.to(power.dtype)  # (B, frames, bands)
        return torch.log(mel + MEL_LOG_OFFSET)[:, : self.frames_needed]
