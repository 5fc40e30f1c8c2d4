/* genai_config.h — the genai_config.json ONNX Runtime GenAI reads beside
 * model.onnx (model type, KV-cache geometry, I/O names, token ids, search
 * defaults). */
#ifndef PHIQ_ONNX_GENAI_CONFIG_H
#define PHIQ_ONNX_GENAI_CONFIG_H

#include "model/hparams.h"

/* Returns a malloc'd JSON text (NULL on OOM, message recorded).
 * max_length: search.max_length (the KV buffer length with the shared buffer). */
char *phiq_genai_config_json(const phiq_hparams *hp, int max_length);

#endif
