/* chat.h — chat prompts. A checkpoint's own chat template (tokenizer_config.json
 * chat_template, a string or the "default" of a list of named templates;
 * chat_template.jinja; GGUF tokenizer.chat_template) is run by the Jinja
 * interpreter of src/template with the variables transformers'
 * apply_chat_template gives it (messages, tools, add_generation_prompt,
 * bos_token, eos_token, ...). Only without a template (GGUF files that carry
 * none, or a named format) are the known Phi formats rendered in C, recognised
 * by markers (logic restated in phi-family-architecture.md §3c). */
#ifndef PHIQ_TOKENIZER_CHAT_H
#define PHIQ_TOKENIZER_CHAT_H

#include <stdbool.h>

#include "tokenizer/tokenizer.h"

typedef enum phiq_chat_format {
    PHIQ_CHAT_NONE = 0,
    PHIQ_CHAT_PHI3 = 1,      /* <|role|>\n{content}<|end|>\n  (Phi-3, Phi-3.5, PhiMoE, Phi-3-small) */
    PHIQ_CHAT_PHI4 = 2,      /* <|im_start|>role<|im_sep|>{content}<|im_end|>  (phi-4, Phi-4-reasoning) */
    PHIQ_CHAT_PHI4_MINI = 3, /* <|role|>{content}<|end|>, no newlines  (Phi-4-mini, -multimodal) */
    PHIQ_CHAT_JINJA = 4,     /* a template of no known Phi format: rendered by Jinja only */
} phiq_chat_format;

typedef struct phiq_chat_template {
    int format;                       /* phiq_chat_format */
    bool bos_in_template;             /* template writes {{ bos_token }} first: tokenize without adding BOS */
    bool eos_without_gen_prompt;      /* eos_token appended when add_generation_prompt is false */
    bool assistant_after_user;        /* the header for the reply follows every user turn (Phi-3 Apr 2024, phi-4 first upload) */
    bool system_dropped;              /* system messages are ignored (Phi-3 Apr 2024) */
    bool system_if_nonempty;          /* system message only when its content is non-empty (Phi-3.5) */
    bool gen_prompt_unless_assistant_last; /* no generation prompt after an assistant message */
    char bos[64], eos[64];            /* token texts for bos_token / eos_token */
    char unk[64], pad[64];            /* unk_token / pad_token ("" = not passed) */
    const char *jinja;                /* the template source, rendered by Jinja when set; borrowed (from the
                                         tokenizer or the caller), must outlive the struct's use */
} phiq_chat_template;

typedef struct phiq_chat_msg {
    const char *role;    /* "system", "user", "assistant", ... */
    const char *content;
    const char *tools;   /* Phi-4-mini system message tools JSON, or NULL */
} phiq_chat_msg;

/* Takes a Jinja template (borrowed into out->jinja): parses it (an error names
 * the unsupported tag/filter/test or the syntax error) and recognises the Phi
 * format by markers for the flags above. Returns the format (> 0; PHIQ_CHAT_JINJA
 * when no Phi markers match). bos/eos default to "<s>"/"<|endoftext|>". */
int phiq_chat_template_detect(const char *jinja, phiq_chat_template *out);
/* Built-in formats by name: "phi3" (= llama.cpp's), "phi3.5", "phi3-apr2024",
 * "phi4", "phi4-mini". */
int phiq_chat_template_named(const char *name, phiq_chat_template *out);
/* From a tokenizer: its chat template if any (borrowed: keep the tokenizer),
 * else guessed from the special tokens present (<|im_sep|> -> phi4, <|end|>
 * id >= 100000 -> phi4-mini, <|end|> -> phi3.5); bos/eos texts from the tokenizer. */
int phiq_chat_template_from_tokenizer(const phiq_tokenizer *t, phiq_chat_template *out);

/* Renders messages; returns a malloc'd NUL-terminated string or NULL. */
char *phiq_chat_render(const phiq_chat_template *t, const phiq_chat_msg *msgs, int n, bool add_generation_prompt);
/* Renders an OpenAI/transformers-style JSON array of message objects (any keys:
 * role, content, tool_calls, tools, ...) with an optional JSON array of tool
 * schemas (NULL: tools is None), exactly as apply_chat_template would. Without a
 * Jinja template, each message needs string role and content. Returns a
 * malloc'd string or NULL with phiq_error() set. Thread-safe. */
char *phiq_chat_render_json(const phiq_chat_template *t, const char *messages_json, const char *tools_json,
                            bool add_generation_prompt);

#endif
