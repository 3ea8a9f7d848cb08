"""SymGNN's fast training path (:mod:`models.symgnn`): chunked autograd functions.

Tested equal to the plain path (DGL's ``EGATConv`` with the edge norm and projection, and
the summed edge encoder in autograd ops) in values, gradients and batch-norm running
statistics (``tests/test_symgnn_fast.py``, ``tests/test_models.py``). Hand-written
because no library fuses these steps on the CPU: ``torch.compile`` of a chunk was slower
than the eager chunks here (1.2 s against 0.75 s for the first layer's forward), and
autograd keeps several [n_edges, heads x hidden_dim] tensors per layer (1.6 GB each in
the first layer on a full batch of six 8000-atom CuZr graphs) and makes one pass over
memory per operation.

- :class:`EdgesByDestination`: a graph's edges sorted by receiver, DGL's in-edge order, in
  which the edge tensors of the fast path are stored (chunks then gather from nearby rows).
- :class:`SymmetrisedEncoder`: the summed edge encodings over the transform set, without
  keeping edge-sized activations.
- :class:`EdgeAttention`: one attention layer's edge computation over chunks of edges.
- :class:`ActivationStore`: the layer's edge activation, kept between training steps.
- :func:`edge_attention_inference`: the same edge computation in evaluation mode without
  autograd, storing nothing of size [n_edges, heads x hidden_dim].
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch
from torch import nn

from models import common
from models.common import row_chunks


def _chunk_rows(n: int, width: int) -> list[slice]:
    """Row slices of an [n, width] tensor of about ``EDGE_CHUNK x 64`` elements (16 MiB in float32)."""
    return row_chunks(n, max(1, common.EDGE_CHUNK * 64 // width))


def _head_columns(attn: torch.Tensor) -> torch.Tensor:
    """[heads, dim] attention vectors -> block matrix [heads * dim, heads]: f @ it = per-head dot products."""
    heads, dim = attn.shape
    eye = torch.eye(heads, dtype=attn.dtype, device=attn.device)
    return (attn.unsqueeze(-1) * eye.unsqueeze(1)).reshape(heads * dim, heads)


class _Concatenated:
    """Row chunks of ``torch.cat(tensors, 1)`` built on demand in one reused buffer (no full-size copy)."""

    def __init__(self, tensors: list[torch.Tensor], chunks: list[slice]):
        self.tensors = tensors
        self.width = sum(t.shape[1] for t in tensors)
        rows = chunks[0].stop if chunks else 0
        self.buffer = tensors[0].new_empty(rows, self.width) if len(tensors) > 1 else None

    def __getitem__(self, rows: slice) -> torch.Tensor:
        if self.buffer is None:
            return self.tensors[0][rows]
        return torch.cat([t[rows] for t in self.tensors], 1, out=self.buffer[: rows.stop - rows.start])


class EdgeAttention(torch.autograd.Function):
    """EGATConv's edge computation fused over chunks of edges, with the edge norm and projection.

    pre = h_src[src] + h_dst[dst] + e W^T [n_edges, H*D] (``h_src`` carries EGATConv's bias),
    f = LeakyReLU(pre), attention logits (f * attn).sum(-1) [n_edges, H] and, when a batch
    norm is given, the updated edge state e + Linear(BatchNorm(f)) [n_edges, D] with batch
    statistics (training mode). Same operations as ``EGATConv`` followed by :class:`SymGNNLayer`'s edge
    norm and projection, re-grouped so that each chunk of edges is built, activated and
    reduced while it is in cache: the forward writes f once and reads it once more (for the
    projection), the backward reads it twice (batch-norm sums, then the gradient chunk by
    chunk, scattered onto the nodes at once). Only f is kept for the backward pass, where
    autograd would keep three [n_edges, H*D] tensors (1.6 GB each in the first layer on a
    full batch of six 8000-atom CuZr graphs): LeakyReLU's derivative needs only the sign of
    pre, which is the sign of f. The batch-norm gradient is the standard one (Ioffe &
    Szegedy 2015). Also returns the batch mean and biased variance of f (running statistics).
    """

    @staticmethod
    def forward(ctx, h_src, h_dst, e, fc_w, attn, src, dst, gamma, beta, proj_w, proj_b, eps, store):
        n, width = len(e), h_src.shape[1]
        heads = attn.shape[1]
        columns = _head_columns(attn[0])
        f = store.take(h_src, n, width, lend=any(ctx.needs_input_grad))
        ctx.store = store
        logits = h_src.new_empty(n, heads)
        chunks = _chunk_rows(n, width)
        # One chunk of scratch space, reused: fresh chunk-sized temporaries cost page faults.
        work = h_src.new_empty(chunks[0].stop if chunks else 0, width)
        ones = h_src.new_ones(len(work))
        norm = gamma is not None
        total = squares = shift = None
        for rows in chunks:
            fc, buf = f[rows], work[: rows.stop - rows.start]
            torch.index_select(h_src, 0, src[rows], out=fc)
            fc.add_(torch.index_select(h_dst, 0, dst[rows], out=buf))
            fc.addmm_(e[rows], fc_w.t())
            nn.functional.leaky_relu_(fc)
            torch.mm(fc, columns, out=logits[rows])
            if norm:
                # One-pass batch statistics, shifted by the first chunk's mean against cancellation.
                if shift is None:
                    shift = fc.mean(0)
                    total, squares = torch.zeros_like(shift), torch.zeros_like(shift)
                torch.sub(fc, shift, out=buf)
                total += ones[: len(buf)] @ buf  # column sums as matrix-vector products (faster)
                squares += ones[: len(buf)] @ buf.mul_(buf)
        ctx.num_nodes = len(h_src)
        ctx.f_consumed = False
        if not norm:
            ctx.save_for_backward(f, e, fc_w, attn, src, dst)
            return logits, None, None, None
        mean = shift + total / n
        var = (squares / n - (total / n) ** 2).clamp_(min=0.0)
        invstd = torch.rsqrt(var + eps)
        scale = gamma * invstd
        # Linear(BatchNorm(f)) = f A + c with A = diag(scale) W^T: no normalised copy of f.
        # With the residual: out = e + Linear(BatchNorm(f)).
        out = torch.addmm(e, f, scale.unsqueeze(1) * proj_w.t()).add_(
            proj_b + (beta - mean * scale) @ proj_w.t()
        )
        ctx.save_for_backward(f, e, fc_w, attn, src, dst, gamma, beta, proj_w, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return logits, out, mean, var

    @staticmethod
    def backward(ctx, grad_logits, grad_out, _grad_mean, _grad_var):
        if ctx.f_consumed:
            raise RuntimeError("symgnn's fast path supports one backward pass (no retain_graph)")
        ctx.f_consumed = True
        f, e, fc_w, attn, src, dst, *norm = ctx.saved_tensors
        n, width = f.shape
        heads = attn.shape[1]
        columns = _head_columns(attn[0])
        chunks = _chunk_rows(n, width)
        # Pass 1, one read of f: f^T [grad_out | grad_logits], the sums over edges of the
        # projection's and the attention vectors' gradients.
        grads = _Concatenated([grad_out, grad_logits] if norm else [grad_logits], chunks)
        f_t_grads = f.new_zeros(width, grads.width)
        for rows in chunks:
            f_t_grads.addmm_(f[rows].t(), grads[rows])
        grad_columns = f_t_grads[:, -heads:]
        grad_attn = torch.diagonal(grad_columns.view(heads, -1, heads), dim1=0, dim2=2).t().unsqueeze(0)
        if norm:
            gamma, beta, proj_w, mean, invstd = norm
            # Batch norm: with g = grad_out W (the gradient of BatchNorm(f)) and f_hat the normalised f,
            # d/df = gamma invstd (g - mean(g) - f_hat mean(g f_hat)), where
            # sum(g) = sum(grad_out) W and sum(g f_hat) follows from f^T grad_out.
            grad_proj_b = grad_out.sum(0)
            fhat_t_grad_out = (
                f_t_grads[:, : len(grad_proj_b)] - torch.outer(mean, grad_proj_b)
            ) * invstd.unsqueeze(1)
            grad_beta = grad_proj_b @ proj_w
            grad_gamma = (proj_w * fhat_t_grad_out.t()).sum(0)
            grad_proj_w = fhat_t_grad_out.t() * gamma + torch.outer(grad_proj_b, beta)
            grads_norm = (grad_gamma, grad_beta, grad_proj_w, grad_proj_b)
            # d/df = [grad_out | grad_logits] @ mat + f * slope + offset, chunk by chunk.
            scale = gamma * invstd
            mat = torch.cat([proj_w * scale, columns.t()])
            slope = -scale * invstd * grad_gamma / n
            offset = -scale * grad_beta / n - mean * slope
        else:
            grads_norm = (None,) * 4
            mat = columns.t()
        # Pass 2: d/d pre chunk by chunk, sent on to e, W and (scattered) the two node inputs.
        # e's gradient goes into f's storage (a fresh tensor would cost page faults): its rows
        # 0..r end before f's row r + 1 starts (width >= d), and each chunk of f is read first.
        grad_e = f.view(-1)[: e.numel()].view_as(e)
        grad_w = torch.zeros_like(fc_w)
        grad_src = f.new_zeros(ctx.num_nodes, width)
        grad_dst = f.new_zeros(ctx.num_nodes, width)
        work = f.new_empty(chunks[0].stop if chunks else 0, width)
        for rows in chunks:
            fc, grad_pre = f[rows], work[: rows.stop - rows.start]
            if norm:
                torch.addmm(offset, grads[rows], mat, out=grad_pre).addcmul_(fc, slope)
            else:
                torch.mm(grads[rows], mat, out=grad_pre)
            # LeakyReLU's derivative from the sign of f, which is the sign of pre.
            torch.ops.aten.leaky_relu_backward.grad_input(grad_pre, fc, 0.01, False, grad_input=grad_pre)
            if norm:  # the residual's gradient plus the one through W
                torch.addmm(grad_out[rows], grad_pre, fc_w, out=grad_e[rows])
            else:
                torch.mm(grad_pre, fc_w, out=grad_e[rows])
            grad_w.addmm_(grad_pre.t(), e[rows])
            grad_src.index_add_(0, src[rows], grad_pre)
            grad_dst.index_add_(0, dst[rows], grad_pre)
        ctx.store.release(f)
        return grad_src, grad_dst, grad_e, grad_w, grad_attn, None, None, *grads_norm, None, None


@torch.no_grad()
def edge_attention_inference(
    h_src: torch.Tensor,
    h_dst: torch.Tensor,
    e: torch.Tensor,
    fc_w: torch.Tensor,
    attn: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    affine: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:class:`EdgeAttention`'s forward without autograd, the batch norm in evaluation mode.

    The edge norm and projection with running statistics are one affine map of f,
    ``affine`` = (A [H*D, D], c [D]); None for the last layer (no edge output). Nothing of
    size [n_edges, H*D] is stored: each chunk of f is built, read and dropped in cache.
    Returns the attention logits [n_edges, H] and e + f A + c [n_edges, D] (or None).
    """
    n, width = len(e), h_src.shape[1]
    columns = _head_columns(attn[0])
    logits = h_src.new_empty(n, attn.shape[1])
    e_out = None if affine is None else torch.empty_like(e)
    chunks = _chunk_rows(n, width)
    work = h_src.new_empty(chunks[0].stop if chunks else 0, width)
    for rows in chunks:
        fc = torch.index_select(h_src, 0, src[rows], out=work[: rows.stop - rows.start])
        fc.add_(h_dst.index_select(0, dst[rows])).addmm_(e[rows], fc_w.t())
        nn.functional.leaky_relu_(fc)
        torch.mm(fc, columns, out=logits[rows])
        if affine is not None:
            torch.addmm(e[rows], fc, affine[0], out=e_out[rows]).add_(affine[1])
    return logits, e_out


class SymmetrisedEncoder(torch.autograd.Function):
    """sum over transforms t of ReLU(BN2(ReLU(BN1(disp t W1^T + b1)) W2^T + b2)) [n_edges, d], training mode.

    The edge encoder of :func:`_encoder` summed over the transform set, with batch
    statistics, computed without keeping any [n_edges, d] activation: layer 1 is affine
    in the displacements, so its batch mean and variance follow exactly from the mean and
    3x3 covariance of ``disp``; one pass over chunks of edges gathers the mean and
    covariance of the hidden layer (hence layer 2's statistics), a second one writes the
    output. The backward pass recomputes the activations chunk by chunk, with the same
    operations as the forward pass (the same ReLU masks), in two passes: the sums that
    batch norm's gradient needs (Ioffe & Szegedy 2015) for layer 2, then for layer 1.
    ``disp`` gets no gradient. Also returns the batch means and biased variances
    [n_transforms, 4, d] (mean1, var1, mean2, var2) for the running statistics.
    """

    @staticmethod
    def forward(ctx, disp, transforms, w1, b1, gamma1, beta1, w2, b2, gamma2, beta2, eps1, eps2):
        n = len(disp)
        chunks = _encoder_chunks(n)
        mean_d = disp.mean(0)
        centred = disp - mean_d
        cov_d = centred.t() @ centred / n  # [3, 3]
        # Layer 1 of transform t as r1 = ReLU(disp @ m1 + c1): x = disp t, a1 = x W1^T + b1.
        a = transforms @ w1.t()  # [T, 3, d]
        mean_xa = mean_d @ a  # [T, d]: batch mean of a1 - b1
        var1 = ((cov_d @ a) * a).sum(1)  # [T, d]: diag(a^T cov a)
        invstd1 = torch.rsqrt(var1 + eps1)
        scale1 = gamma1 * invstd1
        m1, c1 = a * scale1.unsqueeze(1), beta1 - mean_xa * scale1
        # Pass 1: mean and covariance of r1, shifted by the first chunk's mean against cancellation.
        shift = torch.stack(
            [torch.addmm(c1[k], disp[chunks[0]], m1[k]).clamp_(min=0.0).mean(0) for k in range(len(a))]
        )
        total = torch.zeros_like(c1)
        gram = c1.new_zeros(len(a), len(b1), len(b1))
        work = _Workspace(disp, chunks, len(b1), 2)
        ones = disp.new_ones(chunks[0].stop if chunks else 0)  # column sums as matrix-vector products
        for rows in chunks:
            r1, _ = work.views(rows)
            for k in range(len(a)):
                torch.addmm(c1[k], disp[rows], m1[k], out=r1).clamp_(min=0.0).sub_(shift[k])
                total[k] += ones[: len(r1)] @ r1
                gram[k].addmm_(r1.t(), r1)
        mean_r = shift + total / n
        cov_r = gram / n - (total / n).unsqueeze(2) * (total / n).unsqueeze(1)  # [T, d, d]
        mean_rw = mean_r @ w2.t()  # batch mean of a2 - b2
        var2 = ((cov_r @ w2.t()) * w2.t()).sum(1)
        invstd2 = torch.rsqrt(var2 + eps2)
        scale2 = gamma2 * invstd2
        m2, c2 = w2.t() * scale2.unsqueeze(1), beta2 - mean_rw * scale2
        # Pass 2: the output.
        out = disp.new_empty(n, len(b1))
        for rows in chunks:
            acc = out[rows].zero_()
            r1, z2 = work.views(rows)
            for k in range(len(transforms)):
                torch.addmm(c1[k], disp[rows], m1[k], out=r1).clamp_(min=0.0)
                acc += torch.addmm(c2[k], r1, m2[k], out=z2).clamp_(min=0.0)
        ctx.save_for_backward(
            disp,
            transforms,
            w1,
            w2,
            gamma1,
            gamma2,
            m1,
            c1,
            m2,
            c2,
            mean_d,
            cov_d,
            mean_xa,
            mean_r,
            mean_rw,
            invstd1,
            invstd2,
        )
        stats = torch.stack([mean_xa + b1, var1, mean_rw + b2, var2], 1)
        ctx.mark_non_differentiable(stats)
        return out, stats

    @staticmethod
    def backward(ctx, grad_out, _grad_stats):
        disp, transforms, w1, w2, gamma1, gamma2, m1, c1, m2, c2, *rest = ctx.saved_tensors
        mean_d, cov_d, mean_xa, mean_r, mean_rw, invstd1, invstd2 = rest
        n, num_t = len(disp), len(transforms)
        chunks = _encoder_chunks(n)
        relu_grad = torch.ops.aten.threshold_backward.grad_input  # ReLU's: grad where (input or output) > 0
        # Normalised pre-activations: a1_hat = disp @ p1 + q1, a2_hat = r1 @ p2 + q2.
        p1, q1 = (transforms @ w1.t()) * invstd1.unsqueeze(1), -mean_xa * invstd1
        p2, q2 = w2.t() * invstd2.unsqueeze(1), -mean_rw * invstd2
        scale1, scale2 = gamma1 * invstd1, gamma2 * invstd2
        work = _Workspace(disp, chunks, len(w1), 4)
        ones = disp.new_ones(chunks[0].stop if chunks else 0)  # column sums as matrix-vector products
        # Pass 1: sums over edges of g2 (the gradient at layer 2's batch-norm output) and r1^T g2,
        # which give sum(g2 * a2_hat) = sum_i p2[i] (r1^T g2)[i] + q2 sum(g2).
        sum_g2, r1_t_g2 = torch.zeros_like(c2), torch.zeros_like(m2)
        for rows in chunks:
            r1, g2, _, _ = work.views(rows)
            for k in range(num_t):
                torch.addmm(c1[k], disp[rows], m1[k], out=r1).clamp_(min=0.0)
                relu_grad(grad_out[rows], torch.addmm(c2[k], r1, m2[k], out=g2), 0.0, grad_input=g2)
                sum_g2[k] += ones[: len(g2)] @ g2
                r1_t_g2[k].addmm_(r1.t(), g2)
        sum_g2a = (p2 * r1_t_g2).sum(1) + q2 * sum_g2
        # Pass 2: d/d a2 = scale2 (g2 - mean(g2) - a2_hat mean(g2 a2_hat)) = r1 @ p2s + offset2 + scale2 g2
        # gives W2's gradient and, through r1, layer 1's g1 (the gradient at its batch-norm output):
        # sum(g1) and disp^T g1.
        slope2 = -scale2 * sum_g2a / n
        offset2 = q2 * slope2 - scale2 * sum_g2 / n
        p2s = p2 * slope2.unsqueeze(1)
        grad_w2, sum_g1 = torch.zeros_like(w2), torch.zeros_like(c1)
        disp_t_g1 = disp.new_zeros(num_t, 3, len(w1))
        for rows in chunks:
            x = disp[rows]
            r1, g2, grad_a2, g1 = work.views(rows)
            for k in range(num_t):
                torch.addmm(c1[k], x, m1[k], out=r1).clamp_(min=0.0)
                relu_grad(grad_out[rows], torch.addmm(c2[k], r1, m2[k], out=g2), 0.0, grad_input=g2)
                torch.addmm(offset2[k], r1, p2s[k], out=grad_a2).addcmul_(g2, scale2[k])
                grad_w2.addmm_(grad_a2.t(), r1)
                relu_grad(torch.mm(grad_a2, w2, out=g1), r1, 0.0, grad_input=g1)
                sum_g1[k] += ones[: len(g1)] @ g1
                disp_t_g1[k].addmm_(x.t(), g1)
        sum_g1a = (p1 * disp_t_g1).sum(1) + q1 * sum_g1
        # W1 from sums only: with x = disp t, d/d a1 = scale1 (g1 - mean(g1) - a1_hat mean(g1 a1_hat)) and
        # a1_hat^T x / n = invstd1 W1 cov(x).
        mean_x = mean_d @ transforms  # [T, 3]
        cov_x = transforms.transpose(1, 2) @ cov_d @ transforms  # [T, 3, 3]
        grad_w1 = scale1.unsqueeze(2) * (
            disp_t_g1.transpose(1, 2) @ transforms
            - sum_g1.unsqueeze(2) * mean_x.unsqueeze(1)
            - (sum_g1a * invstd1).unsqueeze(2) * (w1 @ cov_x)
        )
        # The biases before a batch norm: zero up to rounding (the norm subtracts them again); these
        # are the sums over edges of d/d a1 and d/d a2, from the sums above.
        sum_a1_hat = n * (mean_d @ p1 + q1)
        grad_b1 = scale1 * (sum_g1 - n * (sum_g1 / n) - sum_a1_hat * (sum_g1a / n))
        grad_b2 = n * (torch.einsum("ti,tij->tj", mean_r, p2s) + offset2) + scale2 * sum_g2
        return (
            None,
            None,
            grad_w1.sum(0),
            grad_b1.sum(0),
            sum_g1a.sum(0),
            sum_g1.sum(0),
            grad_w2,
            grad_b2.sum(0),
            sum_g2a.sum(0),
            sum_g2.sum(0),
            None,
            None,
        )


class _Workspace:
    """``count`` chunk-sized [rows, width] scratch tensors, reused: fresh ones would cost page faults."""

    def __init__(self, like: torch.Tensor, chunks: list[slice], width: int, count: int):
        self.buffers = like.new_empty(count, chunks[0].stop if chunks else 0, width)

    def views(self, rows: slice) -> list[torch.Tensor]:
        return list(self.buffers[:, : rows.stop - rows.start])


def _encoder_chunks(n: int) -> list[slice]:
    """Row slices for the [n_edges, hidden_dim] temporaries of :class:`SymmetrisedEncoder` (4 MiB each)."""
    return row_chunks(n, max(1, common.EDGE_CHUNK // 2))


class ActivationStore:
    """The [n_edges, heads x hidden_dim] activation of one :class:`EdgeAttention`, kept between steps.

    A fresh tensor of that size (1.6 GB in the first layer on a full batch of six
    8000-atom CuZr graphs) is mapped from the operating system at every step and its
    pages faulted in again (~0.25 s for the first layer); reusing one costs nothing. The
    buffer is lent out while a graph that saved it may still run its backward pass, and
    handed out again only once that backward pass has returned it and no tensor aliases
    its storage any more (the gradient the backward pass writes into it). ``clear`` frees
    it: the model's declared training cache (``Ability.TRAINING_CACHE``, see
    :meth:`models.symgnn.SymGNN.release_cache`), called by the training loop when training
    ends, by the explainers, and by the model itself before it takes the plain path.
    """

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None
        self.lent = False

    def take(self, like: torch.Tensor, n: int, width: int, lend: bool) -> torch.Tensor:
        """An uninitialised [n, width] tensor of ``like``'s dtype and device, lent out until
        :meth:`release` when ``lend`` (a backward pass will read it)."""
        buffer = self.buffer
        reusable = (
            buffer is not None
            and not self.lent
            and buffer.shape == (n, width)
            and buffer.dtype == like.dtype
            and buffer.device == like.device
            and _sole_owner(buffer)
        )
        if not reusable:
            self.buffer = None  # freed (unless a graph still holds it) before the new one exists
            buffer = self.buffer = like.new_empty(n, width)
        self.lent = lend
        return buffer

    def release(self, tensor: torch.Tensor) -> None:
        """The backward pass is done with ``tensor``."""
        if tensor is self.buffer:
            self.lent = False

    def clear(self) -> None:
        self.buffer, self.lent = None, False


def _sole_owner(tensor: torch.Tensor) -> bool:
    """No other tensor (view, alias) shares ``tensor``'s storage; False when torch cannot say."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    return use_count is not None and use_count(tensor.untyped_storage()._cdata) == 1


@dataclass
class EdgesByDestination:
    """A graph's edges in the order the lean path stores edge tensors: sorted by destination.

    Consecutive edges then share their destination particle and gather from nearby rows,
    which makes the chunked gathers and scatters of :class:`EdgeAttention` cache friendly.
    """

    graph: dgl.DGLGraph  # the same particles, its edge i = the original edge order[i]
    src: torch.Tensor  # [n_edges] senders
    dst: torch.Tensor  # [n_edges] receivers, ascending
    order: torch.Tensor  # [n_edges] original edge ids

    @classmethod
    def by_destination(cls, graph: dgl.DGLGraph) -> EdgesByDestination:
        # The in-edge (CSC) index that DGL builds anyway for its message passing.
        indptr, src, order = graph.adj_tensors("csc")
        if len(order) == 0:  # DGL's shorthand for consecutive edge ids
            order = torch.arange(graph.num_edges(), device=src.device)
        dst = torch.repeat_interleave(
            torch.arange(graph.num_nodes(), device=src.device), indptr.diff(), output_size=len(src)
        )
        sorted_graph = dgl.graph(("csc", (indptr, src, src.new_empty(0))), num_nodes=graph.num_nodes())
        return cls(sorted_graph, src, dst, order)

    def dropout_(self, e: torch.Tensor, p: float) -> torch.Tensor:
        """``nn.functional.dropout`` of the edge tensor ``e`` [n_edges, d] stored in this order, in place.

        The mask is drawn in the original edge order, so that the same random state
        drops the same edges as the plain path does. On CPU torch's dropout draws a
        Bernoulli(1 - p) tensor, whose values do not depend on its dtype: drawn as int32
        (torch's own intermediate) and applied chunk by chunk. Elsewhere through torch's own
        dropout of ones, whose fused kernels draw differently.
        """
        if p == 0.0:
            return e
        if e.device.type == "cpu" and p < 1.0:
            keep = torch.empty(e.shape, dtype=torch.int32).bernoulli_(1.0 - p)
            return _KeepRows.apply(e, keep, self.order, e.new_ones(()).div_(1.0 - p))
        return e.mul_(nn.functional.dropout(e.new_ones(e.shape), p, True).index_select(0, self.order))


class _KeepRows(torch.autograd.Function):
    """x * (keep[order] * scale) [n_edges, d] in x's storage, chunk by chunk: dropout with a mask drawn in
    another row order, for an ``x`` that nothing else reads.

    The mask is gathered once (random access) and kept in this order as bytes for the backward.
    """

    @staticmethod
    def forward(ctx, x, keep, order, scale):
        mask = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
        chunks = row_chunks(len(x))
        gathered = keep.new_empty(chunks[0].stop if chunks else 0, keep.shape[1])
        for rows in chunks:
            mask[rows] = torch.index_select(keep, 0, order[rows], out=gathered[: rows.stop - rows.start])
        ctx.save_for_backward(mask, scale)
        ctx.mark_dirty(x)
        return _KeepRows.times_mask(x, mask, scale, out=x)

    @staticmethod
    def backward(ctx, grad):
        mask, scale = ctx.saved_tensors
        return _KeepRows.times_mask(grad, mask, scale, out=torch.empty_like(grad)), None, None, None

    @staticmethod
    def times_mask(
        x: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor:
        """x * (mask * scale) into ``out``, as torch's dropout multiplies by its noise keep / (1 - p)."""
        chunks = row_chunks(len(x))
        noise = x.new_empty(chunks[0].stop if chunks else 0, x.shape[1])
        for rows in chunks:
            buf = noise[: rows.stop - rows.start]
            torch.mul(x[rows], buf.copy_(mask[rows]).mul_(scale), out=out[rows])
        return out
