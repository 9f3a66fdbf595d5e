/* model.h: the loaded model as the encoders see it (internal).
 *
 * config.c fills CnclipConfig from config.json (HF defaults for missing keys),
 * preprocessor_config.json and tokenizer_config.json; model.c picks the
 * weights file, binds every tensor to these structs (checking shapes) and
 * prepares the linear layers with the backend.
 */
#ifndef CNCLIP_MODEL_H
#define CNCLIP_MODEL_H

#include "cnclip.h"
#include "backend.h"
#include "weights.h"

G_BEGIN_DECLS

typedef struct
{
  int hidden_size;               /* W */
  int num_heads;
  int num_layers;
  int intermediate_size;
  int patch_size;
  int image_size;
  int num_channels;
  float layer_norm_eps;
  CnclipActivation act;
} CnclipVisionConfig;

typedef struct
{
  int vocab_size;
  int hidden_size;               /* H */
  int num_heads;
  int num_layers;
  int intermediate_size;
  int max_position_embeddings;
  int type_vocab_size;
  float layer_norm_eps;
  CnclipActivation act;
  int pad_token_id;
} CnclipTextConfig;

typedef struct
{
  CnclipVisionConfig vision;
  CnclipTextConfig text;
  int projection_dim;            /* P */
  float image_mean[3];
  float image_std[3];
  int image_height;              /* preprocessor size; equals vision.image_size */
  int image_width;
  int context_length;            /* tokenizer_config model_max_length, default 52 */
} CnclipConfig;

/* Reads config.json (required), preprocessor_config.json and
 * tokenizer_config.json (optional) from @model_dir, applies HF defaults and
 * checks sizes (positive, heads divide widths, limits that refuse absurd
 * sizes before anything is allocated).
 * Errors: CNCLIP_ERROR_IO, CNCLIP_ERROR_CONFIG, CNCLIP_ERROR_TOO_LARGE. */
gboolean cnclip_config_load (const char *model_dir, CnclipConfig *config, GError **error);
/* Same from strings (tests, fuzzing); @preprocessor_json and
 * @tokenizer_json may be NULL. */
gboolean cnclip_config_parse (const char *config_json, gssize config_len,
    const char *preprocessor_json, gssize preprocessor_len, const char *tokenizer_json,
    gssize tokenizer_len, CnclipConfig *config, GError **error);

typedef struct
{
  const float *weight;           /* [dim] */
  const float *bias;             /* [dim] */
} CnclipNorm;

typedef struct
{
  CnclipNorm ln1;                /* layer_norm1 */
  CnclipLinear qkv;              /* q_proj, k_proj, v_proj fused: [3W, W] */
  CnclipLinear out_proj;
  CnclipNorm ln2;                /* layer_norm2 */
  CnclipLinear fc1;              /* act = quick_gelu */
  CnclipLinear fc2;
} CnclipVisionLayer;

typedef struct
{
  CnclipLinear qkv;              /* query, key, value fused: [3H, H] */
  CnclipLinear attn_out;         /* attention.output.dense */
  CnclipNorm attn_ln;            /* attention.output.LayerNorm */
  CnclipLinear intermediate;     /* act = gelu */
  CnclipLinear output;           /* output.dense */
  CnclipNorm out_ln;             /* output.LayerNorm */
} CnclipTextLayer;

struct _CnclipModel
{
  gint ref_count;
  char *path;
  char *name;
  char *weights_path;
  CnclipConfig config;
  CnclipModelParams params;      /* as resolved (backend never AUTO) */
  CnclipTokenizer *tokenizer;
  CnclipBackend *backend;
  CnclipWeightFile *weights;     /* kept mapped: unpacked tensors point into it */
  GPtrArray *owned;              /* converted / fused buffers (g_free / aligned free) */
  float logit_scale;             /* raw parameter; exp() is the multiplier */
  float logit_scale_exp;
  gboolean has_vision;
  gboolean has_text;

  /* vision */
  CnclipLinear patch_embed;      /* conv as linear: [W, C*p*p], no bias */
  const float *class_embedding;  /* [W] */
  const float *vision_pos_embed; /* [num_patches + 1, W] */
  CnclipNorm pre_ln;
  CnclipVisionLayer *vision_layers;
  CnclipNorm post_ln;
  CnclipLinear visual_projection;       /* [P, W], no bias */

  /* text */
  const float *word_embeddings;  /* [V, H] */
  const float *text_pos_embed;   /* [max_positions, H] */
  const float *token_type_embed; /* [type_vocab, H]; row 0 used */
  CnclipNorm embed_ln;
  CnclipTextLayer *text_layers;
  CnclipLinear text_projection;  /* [P, H], no bias */
};

/* Number of vision tokens: (image_size / patch_size)^2 + 1. */
int cnclip_model_vision_tokens (const CnclipModel *model);

/* The float tensors of a model, for writers (save, make-random-model) and
 * tests. The binder in model.c reads exactly these names and shapes. */
typedef enum
{
  CNCLIP_TENSOR_LOGIT_SCALE,     /* the 0-d logit_scale */
  CNCLIP_TENSOR_WEIGHT,          /* linear or conv weight [out, in...] */
  CNCLIP_TENSOR_BIAS,
  CNCLIP_TENSOR_NORM_WEIGHT,     /* LayerNorm gain */
  CNCLIP_TENSOR_NORM_BIAS,
  CNCLIP_TENSOR_EMBEDDING,       /* embedding tables, class embedding */
} CnclipTensorRole;

typedef struct
{
  char name[96];                 /* Hugging Face name */
  CnclipTensorRole role;
  int ndim;                      /* 0 for logit_scale */
  gint64 shape[4];
} CnclipTensorSpec;

/* Every float tensor (Hugging Face name and shape) a model with @config
 * needs, in the order transformers' state dict lists them: logit_scale,
 * text tower, vision tower, visual_projection, text_projection. A tower is
 * left out when @vision / @text is FALSE. Returns a GArray of
 * CnclipTensorSpec (g_array_unref). Thread-safe. */
GArray *cnclip_model_tensor_specs (const CnclipConfig *config, gboolean vision, gboolean text);

G_END_DECLS

#endif /* CNCLIP_MODEL_H */
