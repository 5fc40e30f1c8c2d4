/* phi3small_tok.c — the special tokens of Phi3SmallTokenizer (Phi-3-small's
 * remote-code tokenizer: tiktoken cl100k_base plus ids 100256..100351, see
 * docs/reference/phi-family-architecture.md §3b): their names, which of them
 * are the model's "dummy" ids (forced to the lowest logit), and the chat
 * template its tokenizer_config.json carries. One table for the runtime
 * tokenizer, the config reader (dummy_token_indices) and `phiq synth`. */
#include <stdio.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

const char *phiq_phi3small_special(int32_t id, char *buf, size_t cap, bool *dummy) {
    bool d = true;
    const char *fixed = NULL;
    if (id < PHIQ_PHI3SMALL_FIRST_SPECIAL || id >= PHIQ_PHI3SMALL_N_VOCAB) return NULL;
    switch (id) {
    case 100257: fixed = "<|endoftext|>"; d = false; break;
    case 100258: fixed = "<|fim_prefix|>"; break; /* cl100k's own, unused: dummy */
    case 100259: fixed = "<|fim_middle|>"; break;
    case 100260: fixed = "<|fim_suffix|>"; break;
    case 100261: fixed = "<|system|>"; d = false; break;
    case 100262: fixed = "<|user|>"; d = false; break;
    case 100263: fixed = "<|assistant|>"; d = false; break;
    case 100266: fixed = "<|end|>"; d = false; break;
    case 100276: fixed = "<|endofprompt|>"; break;
    default: {
        /* <|dummy_id_N|>: 100256 is 2, 100264/100265 are 0/1, 100267.. are
         * 3.., and past <|endofprompt|> they go on from 12 */
        int n = id == 100256 ? 2 : id <= 100265 ? id - 100264 : id <= 100275 ? id - 100264 : id - 100265;
        snprintf(buf, cap, "<|dummy_id_%d|>", n);
        if (dummy) *dummy = true;
        return buf;
    }
    }
    if (dummy) *dummy = d;
    snprintf(buf, cap, "%s", fixed);
    return buf;
}

const char *phiq_phi3small_chat_template(void) {
    /* Phi-3-small-*-instruct tokenizer_config.json (doc §3c) */
    return "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + "
           "'<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}"
           "{% endif %}";
}
