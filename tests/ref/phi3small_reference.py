#!/usr/bin/python3
"""phi3small_reference.py — an independent numpy forward pass of Phi-3-small
(Phi3SmallForCausalLM, float32), written from Microsoft's remote code
(modeling_phi3_small.py, positional_embedding.py, triton_flash_blocksparse_attn.py,
configuration_phi3_small.py, tokenization_phi3_small.py), not from phiq:

  - embeddings x mup_embedding_multiplier; LayerNorm (weight + bias) before
    attention, before the MLP and at the end;
  - query_key_value (with bias) viewed as [KV groups, q_per_kv + 2, head_dim]:
    per group the query heads, then one key head, then one value head;
  - rotary embedding on the whole head (rotate_half), base rope_embedding_base,
    positions x rope_position_scale; with rope_scaling (LongRoPE): the long
    factors and long_mscale (or sqrt(1 + ln(max/orig)/ln(orig))) when the
    sequence is longer than original_max_position_embeddings, else the short
    factors and short_mscale (or 1);
  - softmax scale mup_attn_multiplier / head_dim (mup_use_scaling) else
    1/sqrt(head_dim); layers with (layer + 1) % dense_attention_every_n_layers
    == 0 are dense causal, the others see the block-sparse layout of
    _get_sparse_attn_mask (local blocks plus vertical stride, per-head offset
    h * max(1, vert_stride // n_heads) unless homo_head) intersected with the
    causal mask, token by token;
  - GeGELU on up_proj's interleaved columns (even: quick_gelu after clamping
    at gegelu_limit, odd: clamped to +-limit, plus 1), down_proj with bias;
  - lm_head tied to the embedding (unless tie_word_embeddings is false),
    logits / mup_width_multiplier, the tokenizer's dummy ids set to
    torch.finfo(float32).min.

usage: phi3small_reference.py MODEL_DIR --ids 1,2,3 --out FILE [--mode hf|short|long]

Writes float32 logits [len(ids), vocab_size], row-major. --mode hf: positions
whose sequence fits the original context use the short factors, later ones
a long-factor re-prefill (as Hugging Face generation recomputes the cache).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import layer_norm, load_model, parse_args  # noqa: E402


def dummy_token_indices():
    """Phi3SmallTokenizer.dummy_token_indices: every <|dummy_id_N|> plus the
    fim tokens and <|endofprompt|> of its SPECIAL_TOKENS table."""
    ids = [100256, 100264, 100265] + list(range(100267, 100276))  # dummy_id_2, 0, 1, 3..11
    ids += [100276 + off for off in range(1, 100352 - 100276)]    # dummy_id_12.. (padding to 100352)
    ids += [100258, 100259, 100260, 100276]                        # fim_prefix/middle/suffix, endofprompt
    return sorted(ids)


def rope(cfg, hd, n, use_long):
    base = np.float32(cfg.get("rope_embedding_base", 10 ** 6))
    rs = cfg.get("rope_scaling")
    ar = np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)
    if rs:
        orig = rs["original_max_position_embeddings"]
        if use_long:
            f = np.asarray(rs["long_factor"], dtype=np.float32)
            ms = rs.get("long_mscale", -1)
            if not ms > 0:
                s = cfg.get("max_position_embeddings", 8192) / orig
                ms = 1.0 if s <= 1 else np.sqrt(1 + np.log(s) / np.log(orig))
        else:
            f = np.asarray(rs["short_factor"], dtype=np.float32)
            ms = rs.get("short_mscale", -1)
            if not ms > 0:
                ms = 1.0
        inv = (np.float32(1.0) / (f * base ** ar)).astype(np.float32)
        t = np.arange(n, dtype=np.float32)
    else:
        ms = 1.0
        inv = (np.float32(1.0) / base ** ar).astype(np.float32)
        t = (np.arange(n, dtype=np.float32) * np.float32(cfg.get("rope_position_scale", 1.0))).astype(np.float32)
    freqs = np.outer(t, inv).astype(np.float32)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return (np.cos(emb) * np.float32(ms)).astype(np.float32), (np.sin(emb) * np.float32(ms)).astype(np.float32)


def apply_rope(x, cos, sin):  # x: [heads, n, hd]
    h = x.shape[-1] // 2
    rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos + rot * sin


def sparse_mask(cfg, nh, n):
    """[nh, n, n] booleans: the block layout of the heads, then causal."""
    B = cfg["blocksparse_block_size"]
    local = cfg["blocksparse_num_local_blocks"]
    stride = cfg["blocksparse_vert_stride"]
    nb = -(-n // B)
    q = np.arange(nb)[:, None]
    k = np.arange(nb)[None, :]
    if cfg.get("blocksparse_homo_head_pattern", False):
        vert = [((np.arange(nb) + 1) % stride == 0)] * nh
    else:
        step = max(1, int(stride / nh))
        vert = [((np.arange(nb) + h * step + 1) % stride == 0) for h in range(nh)]
    blocks = np.stack([(q >= k) & ((q - k < local) | v[None, :]) for v in vert])
    tok = np.repeat(np.repeat(blocks, B, axis=1), B, axis=2)[:, :n, :n]
    return tok & np.tril(np.ones((n, n), dtype=bool))[None]


def forward(cfg, W, ids, use_long):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = H // nh
    qpk = nh // nkv
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    n = len(ids)
    emb = W["model.embed_tokens.weight"]
    x = emb[ids].astype(np.float32)
    m = cfg.get("mup_embedding_multiplier", 10.0)
    if m is not None and m > 0:
        x = x * np.float32(m)
    cos, sin = rope(cfg, hd, n, use_long)
    if cfg.get("mup_use_scaling", True):
        scale = 1.0 / (hd / cfg.get("mup_attn_multiplier", 1.0))
    else:
        scale = 1.0 / np.sqrt(hd)
    causal = np.tril(np.ones((n, n), dtype=bool))[None]
    sparse = sparse_mask(cfg, nh, n)
    limit = cfg.get("gegelu_limit", 20.0)
    every = cfg.get("dense_attention_every_n_layers", 2)
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
        mixed = h @ W[p + "self_attn.query_key_value.weight"].T + W[p + "self_attn.query_key_value.bias"]
        mixed = mixed.reshape(n, nkv, qpk + 2, hd)
        q = mixed[:, :, :qpk].reshape(n, nh, hd).transpose(1, 0, 2)  # head = group * qpk + j
        k = mixed[:, :, qpk].transpose(1, 0, 2)                      # [nkv, n, hd]
        v = mixed[:, :, qpk + 1].transpose(1, 0, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        k = np.repeat(k, qpk, axis=0)  # expand_kv_to_q_size: repeat_interleave
        v = np.repeat(v, qpk, axis=0)
        s = (q @ k.transpose(0, 2, 1)) * np.float32(scale)
        dense = bool(every) and (L + 1) % every == 0
        s = np.where(causal if dense else sparse, s, -np.inf)
        s = s - s.max(axis=-1, keepdims=True)
        pr = np.exp(s)
        pr /= pr.sum(axis=-1, keepdims=True)
        a = (pr @ v).transpose(1, 0, 2).reshape(n, nh * hd)
        x = x + a @ W[p + "self_attn.dense.weight"].T + W[p + "self_attn.dense.bias"]
        h = layer_norm(x, W[p + "post_attention_layernorm.weight"], W[p + "post_attention_layernorm.bias"], eps)
        u = h @ W[p + "mlp.up_proj.weight"].T + W[p + "mlp.up_proj.bias"]
        g, lin = u[:, ::2], u[:, 1::2]
        if limit is not None:
            g = np.where(np.isinf(g), g, np.minimum(g, limit))
            lin = np.where(np.isinf(lin), lin, np.clip(lin, -limit, limit))
        act = g * (1.0 / (1.0 + np.exp(-1.702 * g))) * (lin + 1)
        x = x + act.astype(np.float32) @ W[p + "mlp.down_proj.weight"].T + W[p + "mlp.down_proj.bias"]
    x = layer_norm(x, W["model.final_layernorm.weight"], W["model.final_layernorm.bias"], eps)
    head = emb if cfg.get("tie_word_embeddings", True) or "lm_head.weight" not in W else W["lm_head.weight"]
    logits = (x @ head.T).astype(np.float32)
    w = cfg.get("mup_width_multiplier", 8.0)
    if w:
        logits = logits / np.float32(w)
    V = cfg["vocab_size"]
    dummy = cfg.get("dummy_token_indices") or [i for i in dummy_token_indices() if i < V]
    logits[:, dummy] = np.finfo(np.float32).min
    return logits


def main():
    _, d, ids, out, mode = parse_args(__doc__)
    cfg, W = load_model(d)
    if cfg["architectures"][0] != "Phi3SmallForCausalLM":
        raise SystemExit(f"{d}: not a Phi3SmallForCausalLM checkpoint")
    rs = cfg.get("rope_scaling")
    orig = rs["original_max_position_embeddings"] if rs else len(ids)
    if mode == "short" or not rs:
        logits = forward(cfg, W, ids, False)
    elif mode == "long":
        logits = forward(cfg, W, ids, True)
    elif len(ids) <= orig:
        logits = forward(cfg, W, ids, False)
    else:
        logits = np.concatenate([forward(cfg, W, ids[:orig], False), forward(cfg, W, ids, True)[orig:]])
    logits.astype("<f4").tofile(out)


if __name__ == "__main__":
    main()
