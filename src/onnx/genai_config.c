/* genai_config.c — builds genai_config.json with cJSON, with the keys the
 * onnxruntime-genai model builder writes for a Phi3ForCausalLM CPU decoder
 * (model.type "phi3", or "phi3small" for Phi3SmallForCausalLM; decoder
 * geometry, I/O name templates, token ids and search defaults;
 * past_present_share_buffer because GQA and SparseAttention use it). */
#include "onnx/genai_config.h"

#include <cjson/cJSON.h>

#include "core/common.h"

static cJSON *gc_obj(cJSON *parent, const char *key) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddItemToObject(parent, key, o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *phiq_genai_config_json(const phiq_hparams *hp, int max_length) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return phiq_fail_null(PHIQ_ENOMEM, "out of memory writing genai_config.json");
    cJSON *model = gc_obj(root, "model");
    if (!model) goto oom;
    if (hp->bos_id >= 0) cJSON_AddNumberToObject(model, "bos_token_id", hp->bos_id);
    cJSON_AddNumberToObject(model, "context_length", hp->n_ctx_train);
    cJSON *dec = gc_obj(model, "decoder");
    if (!dec) goto oom;
    cJSON *so = gc_obj(dec, "session_options");
    if (!so) goto oom;
    cJSON_AddStringToObject(so, "log_id", "onnxruntime-genai");
    cJSON_AddItemToObject(so, "provider_options", cJSON_CreateArray());
    cJSON_AddStringToObject(dec, "filename", "model.onnx");
    cJSON_AddNumberToObject(dec, "head_size", hp->head_dim);
    cJSON_AddNumberToObject(dec, "hidden_size", hp->n_embd);
    cJSON *in = gc_obj(dec, "inputs");
    if (!in) goto oom;
    cJSON_AddStringToObject(in, "input_ids", "input_ids");
    cJSON_AddStringToObject(in, "attention_mask", "attention_mask");
    cJSON_AddStringToObject(in, "past_key_names", "past_key_values.%d.key");
    cJSON_AddStringToObject(in, "past_value_names", "past_key_values.%d.value");
    cJSON *out = gc_obj(dec, "outputs");
    if (!out) goto oom;
    cJSON_AddStringToObject(out, "logits", "logits");
    cJSON_AddStringToObject(out, "present_key_names", "present.%d.key");
    cJSON_AddStringToObject(out, "present_value_names", "present.%d.value");
    cJSON_AddNumberToObject(dec, "num_attention_heads", hp->n_head);
    cJSON_AddNumberToObject(dec, "num_hidden_layers", hp->n_layer);
    cJSON_AddNumberToObject(dec, "num_key_value_heads", hp->n_head_kv);
    if (hp->n_eos == 1) {
        cJSON_AddNumberToObject(model, "eos_token_id", hp->eos_ids[0]);
    } else if (hp->n_eos > 1) {
        cJSON *eos = cJSON_AddArrayToObject(model, "eos_token_id");
        if (!eos) goto oom;
        for (int i = 0; i < hp->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(hp->eos_ids[i]));
    }
    /* The builder falls back to the first eos id when pad is unset. */
    int pad = hp->pad_id >= 0 ? hp->pad_id : (hp->n_eos > 0 ? hp->eos_ids[0] : -1);
    if (pad >= 0) cJSON_AddNumberToObject(model, "pad_token_id", pad);
    cJSON_AddStringToObject(model, "type", phiq_arch_name(hp->arch)); /* "phi3" or "phi3small", as the builder */
    cJSON_AddNumberToObject(model, "vocab_size", hp->n_vocab);

    cJSON *s = gc_obj(root, "search");
    if (!s) goto oom;
    cJSON_AddNumberToObject(s, "diversity_penalty", 0.0);
    cJSON_AddBoolToObject(s, "do_sample", 0);
    cJSON_AddBoolToObject(s, "early_stopping", 1);
    cJSON_AddNumberToObject(s, "length_penalty", 1.0);
    cJSON_AddNumberToObject(s, "max_length", max_length);
    cJSON_AddNumberToObject(s, "min_length", 0);
    cJSON_AddNumberToObject(s, "no_repeat_ngram_size", 0);
    cJSON_AddNumberToObject(s, "num_beams", 1);
    cJSON_AddNumberToObject(s, "num_return_sequences", 1);
    cJSON_AddBoolToObject(s, "past_present_share_buffer", 1);
    cJSON_AddNumberToObject(s, "repetition_penalty", 1.0);
    cJSON_AddNumberToObject(s, "temperature", 1.0);
    cJSON_AddNumberToObject(s, "top_k", 1);
    cJSON_AddNumberToObject(s, "top_p", 1.0);

    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return phiq_fail_null(PHIQ_ENOMEM, "out of memory writing genai_config.json");
    return txt;
oom:
    cJSON_Delete(root);
    return phiq_fail_null(PHIQ_ENOMEM, "out of memory writing genai_config.json");
}
