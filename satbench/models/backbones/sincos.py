"""The MAE 2-D sin-cos positional embedding, as SatMAE and Scale-MAE compute it (spec section 6).

Formula (MAE ``util/pos_embed.py``): for a grid of ``gh x gw`` patches,

* ``grid = meshgrid(grid_w, grid_h)`` (numpy ``xy`` indexing), so ``grid[0][i, j] = j`` (the column, varying
  along the width) and ``grid[1][i, j] = i`` (the row). MAE names the first half ``emb_h`` but it is fed
  ``grid[0]``, the column coordinate: the FIRST half of the channels encodes the column, the second the row.
* each half is a 1-D code of ``D/2`` channels: ``[sin(pos * omega), cos(pos * omega)]`` concatenated (not
  interleaved), ``omega_i = 1 / 10000 ** (i / (D/4))`` for ``i = 0 .. D/4 - 1``;
* tokens are in row-major order; the CLS position (when asked for) is all zeros.

:func:`mae_2d_sincos` is SatMAE's numpy float64 computation (cast to float32, as MAE does when it copies it
into the ``pos_embed`` Parameter). :func:`scalemae_2d_sincos` is Scale-MAE's float32 torch computation with
the grid coordinates multiplied by a per-sample ground-resolution ratio ``res`` (Scale-MAE's ``input_res``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _check_dim(embed_dim: int) -> None:
    if embed_dim % 4 != 0:
        raise ValueError(f"2-D sin-cos needs an embed_dim divisible by 4, got {embed_dim}")


def mae_1d_sincos(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """MAE ``get_1d_sincos_pos_embed_from_grid``: ``[M, embed_dim]`` float64, ``[sin | cos]``."""
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def mae_2d_sincos(embed_dim: int, grid_h: int, grid_w: int | None = None, cls_token: bool = False) -> np.ndarray:
    """MAE ``get_2d_sincos_pos_embed`` for a ``grid_h x grid_w`` grid (square when ``grid_w`` is None).

    Returns ``[(1 +) grid_h * grid_w, embed_dim]`` float64; a zero row is prepended when ``cls_token``.
    """
    _check_dim(embed_dim)
    grid_w = grid_h if grid_w is None else grid_w
    gh = np.arange(grid_h, dtype=np.float32)
    gw = np.arange(grid_w, dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0)  # [2, grid_h, grid_w]; grid[0] = column index
    grid = grid.reshape([2, 1, grid_h, grid_w])
    emb = np.concatenate([mae_1d_sincos(embed_dim // 2, grid[0]), mae_1d_sincos(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


def _torch_1d_sincos(embed_dim: int, pos: Tensor) -> Tensor:
    omega = torch.arange(embed_dim // 2, dtype=torch.float32, device=pos.device)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = torch.einsum("m,d->md", pos.reshape(-1), omega)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def scalemae_2d_sincos(embed_dim: int, grid_size: int, res: Tensor, cls_token: bool = True) -> Tensor:
    """Scale-MAE ``get_2d_sincos_pos_embed_with_resolution``: ``[n, (1 +) g*g, D]`` float32.

    ``res`` is ``[n]`` (one ground-resolution ratio per sample); the grid coordinates are multiplied by it
    before the MAE formula. The CLS row (``cls_token``) is zeros.
    """
    _check_dim(embed_dim)
    device = res.device
    res = res.to(torch.float32)
    gh = torch.arange(grid_size, dtype=torch.float32, device=device)
    gw = torch.arange(grid_size, dtype=torch.float32, device=device)
    grid = torch.stack(torch.meshgrid(gw, gh, indexing="xy"), dim=0)  # [2, h, w]; grid[0] = column index
    grid = torch.einsum("chw,n->cnhw", grid, res)  # [2, n, h, w]
    _, n, h, w = grid.shape
    emb = torch.cat([_torch_1d_sincos(embed_dim // 2, grid[0]), _torch_1d_sincos(embed_dim // 2, grid[1])], dim=1)
    emb = emb.reshape(n, h * w, embed_dim)
    if cls_token:
        emb = torch.cat([torch.zeros(n, 1, embed_dim, dtype=emb.dtype, device=device), emb], dim=1)
    return emb
