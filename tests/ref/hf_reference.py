#!/usr/bin/python3
"""hf_reference.py — an independent numpy forward pass of Hugging Face's
Phi3ForCausalLM, PhiForCausalLM and PhiMoEForCausalLM (transformers
semantics, float32), used by the tests as the reference where llama.cpp
departs from Hugging Face: the sliding-window mask, the LongRoPE short/long
switch past the original context, and PhiMoE (LayerNorm, biases, the
short/long mscale of its rotary embedding, SparseMixer routing). Written from
the transformers modeling code's definitions (modeling_phi3.py,
modeling_phi.py, modeling_phimoe.py), not from phiq's engine.

usage: hf_reference.py MODEL_DIR --ids 1,2,3 --out FILE [--mode hf|short|long]
                        [--routes FILE]

Writes float32 logits [len(ids), vocab], row-major. --mode hf (default) gives
what Hugging Face generation computes position by position: while the
sequence is at most original_max_position_embeddings long the short factors
are used; past it the cache is recomputed with the long factors, so those
positions see every key rotated with the long factors.

--routes FILE (PhiMoE) also writes, per forward, layer and token, the two
chosen experts, their SparseMixer weights, how many experts each of the two
masked softmaxes kept, and the weights llama.cpp's routing (softmax over all
experts, top-2, renormalised) would give: "pos layer e1 e2 w1 w2 kept1 kept2
lw1 lw2" lines, so a test can show where the two routings differ.
"""
import json
import math
import os
import struct
import sys

import numpy as np


def load_safetensors(path, want):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__" or name not in want:
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = info["dtype"]
            if dt == "BF16":
                u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                arr = u.view(np.float32)
            elif dt == "F16":
                arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "F32":
                arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            else:
                raise SystemExit(f"{path}: dtype {dt} not supported")
            want[name] = arr.reshape(info["shape"])


def load_model(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    names = {}
    for fn in files:
        with open(os.path.join(d, fn), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            for k in json.loads(f.read(n)):
                if k != "__metadata__":
                    names[k] = None
        load_safetensors(os.path.join(d, fn), names)
    return cfg, names


def rms_norm(x, w, eps):
    var = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)).astype(np.float32) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rope_tables(cfg, head_dim, n, factors, use_long=False):
    partial = cfg.get("partial_rotary_factor", 1.0 if cfg["architectures"][0] != "PhiForCausalLM" else 0.5)
    r = int(head_dim * partial)
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (np.arange(0, r, 2, dtype=np.float64) / r))
    mscale = 1.0
    rs = cfg.get("rope_scaling") or {}
    if factors is not None:
        inv = inv / np.asarray(factors, dtype=np.float64)
        orig = cfg.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        scale = cfg["max_position_embeddings"] / orig
        mscale = rs.get("attention_factor") or (1.0 if scale <= 1 else math.sqrt(1 + math.log(scale) / math.log(orig)))
        if is_moe(cfg):  # PhimoeRotaryEmbedding: the explicit mscale of the branch in use replaces it
            mscale = rs["long_mscale"] if use_long else rs["short_mscale"]
    inv = inv.astype(np.float32)
    pos = np.arange(n, dtype=np.float32)
    freqs = np.outer(pos, inv)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return r, (np.cos(emb) * mscale).astype(np.float32), (np.sin(emb) * mscale).astype(np.float32)


def apply_rope(x, r, cos, sin):  # x: [heads, n, d]; rotate_half on the first r dims
    xr, xp = x[..., :r], x[..., r:]
    x1, x2 = xr[..., : r // 2], xr[..., r // 2 :]
    rot = np.concatenate([-x2, x1], axis=-1)
    return np.concatenate([xr * cos + rot * sin, xp], axis=-1)


def attention(q, k, v, window):  # q: [nh, n, d], k/v: [nkv, n, d]
    nh, n, d = q.shape
    rep = nh // k.shape[0]
    k = np.repeat(k, rep, axis=0)
    v = np.repeat(v, rep, axis=0)
    s = (q @ k.transpose(0, 2, 1)) / math.sqrt(d)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    allowed = j <= i
    if window:
        allowed &= j > i - window
    s = np.where(allowed, s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return (p @ v).transpose(1, 0, 2).reshape(n, nh * d)


def is_moe(cfg):
    return cfg["architectures"][0] in ("PhiMoEForCausalLM", "PhimoeForCausalLM")


def sparsemixer(scores, jitter_eps):
    """modeling_phimoe.sparsemixer at inference (training=False, top_k=2) for one
    token's router logits: returns (experts, weights, kept-per-pick)."""
    scores = scores.astype(np.float32)
    # first pick: experts whose (max - s) / max(|s|, max) exceeds 2 eps are masked out
    thr = scores.max()
    factor = np.maximum(np.abs(scores), thr)
    mask = (thr - scores) / factor > 2 * jitter_eps
    g = np.where(mask, -np.inf, scores)
    e1 = int(np.argmax(scores))
    p = np.exp(g - g.max())
    w1 = (p / p.sum())[e1]
    kept1 = int((~mask).sum())
    # second pick: the first expert set to -inf, the threshold now the max of the
    # rest, the factor still from the unmasked scores
    ms = scores.copy()
    ms[e1] = -np.inf
    thr2 = ms.max()
    e2 = int(np.argmax(ms))
    factor2 = np.maximum(np.abs(scores), thr2)
    mask2 = (thr2 - scores) / factor2 > 2 * jitter_eps
    g2 = np.where(mask2, -np.inf, ms)
    p2 = np.exp(g2 - g2.max())
    w2 = (p2 / p2.sum())[e2]
    kept2 = int((~mask2 & np.isfinite(ms)).sum())
    return (e1, e2), (np.float32(w1), np.float32(w2)), (kept1, kept2)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(cfg, W, ids, use_long, routes=None, tag=0):
    arch = cfg["architectures"][0]
    rs = cfg.get("rope_scaling") or {}
    factors = rs.get("long_factor") if use_long else rs.get("short_factor")
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    n = len(ids)
    x = W["model.embed_tokens.weight"][ids].astype(np.float32)
    r, cos, sin = rope_tables(cfg, hd, n, factors, use_long)
    window = cfg.get("sliding_window") or 0
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        if arch == "PhiForCausalLM":
            eps = cfg.get("layer_norm_eps", 1e-5)
            h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
            q = h @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]
            k = h @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]
            vv = h @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]
            q = apply_rope(q.reshape(n, nh, hd).transpose(1, 0, 2), r, cos, sin)
            k = apply_rope(k.reshape(n, nkv, hd).transpose(1, 0, 2), r, cos, sin)
            vv = vv.reshape(n, nkv, hd).transpose(1, 0, 2)
            a = attention(q, k, vv, 0) @ W[p + "self_attn.dense.weight"].T + W[p + "self_attn.dense.bias"]
            m = gelu_tanh(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"]) @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
            x = x + a + m
        elif is_moe(cfg):
            eps = cfg.get("rms_norm_eps", 1e-5)  # PhiMoE's LayerNorms take their epsilon from this key
            h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
            proj = lambda name, t: t @ W[p + f"self_attn.{name}.weight"].T + W.get(p + f"self_attn.{name}.bias", 0)
            q = apply_rope(proj("q_proj", h).reshape(n, nh, hd).transpose(1, 0, 2), r, cos, sin)
            k = apply_rope(proj("k_proj", h).reshape(n, nkv, hd).transpose(1, 0, 2), r, cos, sin)
            vv = proj("v_proj", h).reshape(n, nkv, hd).transpose(1, 0, 2)
            x = x + proj("o_proj", attention(q, k, vv, window))
            h = layer_norm(x, W[p + "post_attention_layernorm.weight"], W[p + "post_attention_layernorm.bias"], eps)
            logits = h @ W[p + "block_sparse_moe.gate.weight"].T
            jitter = cfg.get("router_jitter_noise", 0.01)
            out = np.zeros_like(x)
            for t in range(n):
                es, ws, kept = sparsemixer(logits[t], jitter)
                for e, w in zip(es, ws):
                    ep = p + f"block_sparse_moe.experts.{e}."
                    g = h[t] @ W[ep + "w1.weight"].T
                    u = h[t] @ W[ep + "w3.weight"].T
                    out[t] += w * ((g / (1 + np.exp(-g)) * u) @ W[ep + "w2.weight"].T)
                if routes is not None:
                    lg = logits[t].astype(np.float64)
                    sm = np.exp(lg - lg.max())
                    sm /= sm.sum()
                    l1, l2 = sm[es[0]], sm[es[1]]
                    routes.append(f"{tag} {t} {L} {es[0]} {es[1]} {ws[0]:.9g} {ws[1]:.9g} {kept[0]} {kept[1]} "
                                  f"{l1 / (l1 + l2):.9g} {l2 / (l1 + l2):.9g}")
            x = x + out
        else:
            eps = cfg.get("rms_norm_eps", 1e-5)
            h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
            qkv = h @ W[p + "self_attn.qkv_proj.weight"].T
            q = qkv[:, : nh * hd].reshape(n, nh, hd).transpose(1, 0, 2)
            k = qkv[:, nh * hd : (nh + nkv) * hd].reshape(n, nkv, hd).transpose(1, 0, 2)
            vv = qkv[:, (nh + nkv) * hd :].reshape(n, nkv, hd).transpose(1, 0, 2)
            q = apply_rope(q, r, cos, sin)
            k = apply_rope(k, r, cos, sin)
            x = x + attention(q, k, vv, window) @ W[p + "self_attn.o_proj.weight"].T
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
            gu = h @ W[p + "mlp.gate_up_proj.weight"].T
            g, u = gu[:, : gu.shape[1] // 2], gu[:, gu.shape[1] // 2 :]
            x = x + (u * (g / (1 + np.exp(-g)))) @ W[p + "mlp.down_proj.weight"].T
    if arch == "PhiForCausalLM":
        x = layer_norm(x, W["model.final_layernorm.weight"], W["model.final_layernorm.bias"], cfg.get("layer_norm_eps", 1e-5))
        return x @ W["lm_head.weight"].T + W["lm_head.bias"]
    if is_moe(cfg):
        x = layer_norm(x, W["model.norm.weight"], W["model.norm.bias"], cfg.get("rms_norm_eps", 1e-5))
        out = W.get("lm_head.weight")
        if out is None or cfg.get("tie_word_embeddings"):
            out = W["model.embed_tokens.weight"]
        return x @ out.T + W.get("lm_head.bias", 0)
    x = rms_norm(x, W["model.norm.weight"], cfg.get("rms_norm_eps", 1e-5))
    out = W.get("lm_head.weight")
    if out is None or cfg.get("tie_word_embeddings"):
        out = W["model.embed_tokens.weight"]
    return x @ out.T


def parse_args(doc):
    """DIR --ids I,J,... --out FILE [--mode hf|short|long] ...: (args, dir, ids, out, mode)."""
    a = sys.argv[1:]
    if not a or "--ids" not in a or "--out" not in a:
        raise SystemExit(doc)
    ids = [int(t) for t in a[a.index("--ids") + 1].split(",") if t]
    mode = a[a.index("--mode") + 1] if "--mode" in a else "hf"
    return a, a[0], ids, a[a.index("--out") + 1], mode


def main():
    a, d, ids, out, mode = parse_args(__doc__)
    routes_file = a[a.index("--routes") + 1] if "--routes" in a else None
    routes = [] if routes_file else None
    cfg, W = load_model(d)
    rs = cfg.get("rope_scaling") or {}
    # PhimoeConfig takes original_max_position_embeddings from rope_scaling
    orig = cfg.get("original_max_position_embeddings", rs.get("original_max_position_embeddings", cfg["max_position_embeddings"]))
    if mode == "short" or rs.get("long_factor") is None:
        logits = forward(cfg, W, ids, False, routes)
    elif mode == "long":
        logits = forward(cfg, W, ids, True, routes)
    else:
        if len(ids) <= orig:
            logits = forward(cfg, W, ids, False, routes)
        else:  # positions whose sequence fits use the short table; later ones see a long-factor re-prefill
            logits = np.concatenate([forward(cfg, W, ids[:orig], False, routes, 0),
                                     forward(cfg, W, ids, True, routes, 1)[orig:]])
    logits.astype("<f4").tofile(out)
    if routes_file:
        with open(routes_file, "w") as f:
            f.write("\n".join(routes) + "\n")


if __name__ == "__main__":
    main()
