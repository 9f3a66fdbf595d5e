/* cli-model.c: the model-file commands.
 *
 *   cnclip make-random-model [--config base|tiny] [--seed N] [--vocab FILE] OUTDIR
 *   cnclip convert [--weights-file FILE] MODEL_DIR OUT.safetensors
 *
 * make-random-model writes a complete Hugging Face style model directory
 * (config.json, preprocessor_config.json, vocab.txt, model.safetensors) with
 * random weights shaped like the real OFA-Sys/chinese-clip-vit-base-patch16
 * (--config base, 753 MB) or like tests/data/cnclip-tiny (--config tiny).
 * It exists for benchmarks and tests without the real download: the
 * embeddings mean nothing. The weights are deterministic for a seed and
 * resemble trained ones in scale (FIXTURES.md 1.2): LayerNorm gains
 * uniform in 1 +- 0.15, embeddings and biases N(0, 0.02), linear weights
 * N(0, 1/fan_in), logit_scale 2.6592 (exp = 14.3). Tensors are generated
 * and written in chunks, so the base model never sits in memory.
 * Without --vocab the vocabulary is SYNTHETIC: [PAD] = 0, [unused1..99],
 * [UNK] = 100, [CLS] = 101, [SEP] = 102, [MASK] = 103, printable ASCII,
 * "##" + a-z/0-9, then single CJK ideographs from U+4E00 up to the vocab
 * size (so 一只猫 tokenizes to real-looking ids, but not the real ones).
 *
 * convert loads any supported weights format (safetensors, pytorch_model.bin,
 * official cn_clip *.pt) and writes float32 safetensors under Hugging Face
 * names (cnclip_model_save_safetensors). Nothing is printed on success.
 *
 * Errors: one line "cnclip CMD: ..." on standard error, exit status 1.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "cli.h"
#include "model.h"

/* ------------------------------------------------------------------------ */
/* Configurations                                                           */

static const char base_config[] =
    "{\n"
    "  \"architectures\": [\"ChineseCLIPModel\"],\n"
    "  \"initializer_factor\": 1.0,\n"
    "  \"logit_scale_init_value\": 2.6592,\n"
    "  \"model_type\": \"chinese_clip\",\n"
    "  \"projection_dim\": 512,\n"
    "  \"text_config\": {\n"
    "    \"architectures\": [\"ChineseCLIPTextModel\"],\n"
    "    \"hidden_act\": \"gelu\",\n"
    "    \"hidden_size\": 768,\n"
    "    \"intermediate_size\": 3072,\n"
    "    \"layer_norm_eps\": 1e-12,\n"
    "    \"max_position_embeddings\": 512,\n"
    "    \"model_type\": \"chinese_clip_text_model\",\n"
    "    \"num_attention_heads\": 12,\n"
    "    \"num_hidden_layers\": 12,\n"
    "    \"pad_token_id\": 0,\n"
    "    \"type_vocab_size\": 2,\n"
    "    \"vocab_size\": 21128\n"
    "  },\n"
    "  \"torch_dtype\": \"float32\",\n"
    "  \"vision_config\": {\n"
    "    \"hidden_act\": \"quick_gelu\",\n"
    "    \"hidden_size\": 768,\n"
    "    \"image_size\": 224,\n"
    "    \"intermediate_size\": 3072,\n"
    "    \"layer_norm_eps\": 1e-05,\n"
    "    \"model_type\": \"chinese_clip_vision_model\",\n"
    "    \"num_attention_heads\": 12,\n"
    "    \"num_channels\": 3,\n"
    "    \"num_hidden_layers\": 12,\n"
    "    \"patch_size\": 16,\n"
    "    \"projection_dim\": 512\n"
    "  }\n"
    "}\n";

static const char tiny_config[] =
    "{\n"
    "  \"architectures\": [\"ChineseCLIPModel\"],\n"
    "  \"model_type\": \"chinese_clip\",\n"
    "  \"projection_dim\": 64,\n"
    "  \"text_config\": {\n"
    "    \"hidden_act\": \"gelu\",\n"
    "    \"hidden_size\": 128,\n"
    "    \"intermediate_size\": 512,\n"
    "    \"layer_norm_eps\": 1e-12,\n"
    "    \"max_position_embeddings\": 512,\n"
    "    \"model_type\": \"chinese_clip_text_model\",\n"
    "    \"num_attention_heads\": 2,\n"
    "    \"num_hidden_layers\": 2,\n"
    "    \"pad_token_id\": 0,\n"
    "    \"type_vocab_size\": 2,\n"
    "    \"vocab_size\": 21128\n"
    "  },\n"
    "  \"vision_config\": {\n"
    "    \"hidden_act\": \"quick_gelu\",\n"
    "    \"hidden_size\": 128,\n"
    "    \"image_size\": 224,\n"
    "    \"intermediate_size\": 512,\n"
    "    \"layer_norm_eps\": 1e-05,\n"
    "    \"model_type\": \"chinese_clip_vision_model\",\n"
    "    \"num_attention_heads\": 2,\n"
    "    \"num_channels\": 3,\n"
    "    \"num_hidden_layers\": 2,\n"
    "    \"patch_size\": 16,\n"
    "    \"projection_dim\": 64\n"
    "  }\n"
    "}\n";

static const char preprocessor_config[] =
    "{\n"
    "  \"do_center_crop\": false,\n"
    "  \"do_normalize\": true,\n"
    "  \"do_resize\": true,\n"
    "  \"feature_extractor_type\": \"ChineseCLIPFeatureExtractor\",\n"
    "  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
    "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n"
    "  \"resample\": 3,\n"
    "  \"size\": {\"height\": 224, \"width\": 224}\n"
    "}\n";

/* ------------------------------------------------------------------------ */
/* Deterministic random numbers                                             */

typedef struct
{
  guint64 state;
  gboolean have_spare;
  double spare;
} Rng;

/* splitmix64: small, fast, and good enough to fill weights. */
static guint64
rng_next (Rng *rng)
{
  guint64 z = (rng->state += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double
rng_uniform (Rng *rng)
{
  return ((rng_next (rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
rng_normal (Rng *rng)
{
  if (rng->have_spare) {
    rng->have_spare = FALSE;
    return rng->spare;
  }
  double r = sqrt (-2.0 * log (rng_uniform (rng))), t = 2.0 * G_PI * rng_uniform (rng);
  rng->spare = r * sin (t);
  rng->have_spare = TRUE;
  return r * cos (t);
}

/* One stream per tensor, from the seed and the name, so a tensor does not
 * change when others are added or reordered. */
static void
rng_init (Rng *rng, guint64 seed, const char *name)
{
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325);
  for (const char *p = name; *p; p++)
    h = (h ^ (guint8) *p) * G_GUINT64_CONSTANT (0x100000001b3);
  rng->state = seed * G_GUINT64_CONSTANT (0x2545f4914f6cdd1d) ^ h;
  rng->have_spare = FALSE;
  rng_next (rng);
}

static void
fill_random (Rng *rng, const CnclipTensorSpec *spec, float *out, gsize n)
{
  double fan_in = 1;
  for (int k = 1; k < spec->ndim; k++)
    fan_in *= (double) spec->shape[k];
  for (gsize i = 0; i < n; i++) {
    switch (spec->role) {
      case CNCLIP_TENSOR_LOGIT_SCALE:
        out[i] = 2.6592f;
        break;
      case CNCLIP_TENSOR_WEIGHT:
        out[i] = (float) (rng_normal (rng) / sqrt (fan_in));
        break;
      case CNCLIP_TENSOR_NORM_WEIGHT:
        out[i] = (float) (0.85 + 0.3 * rng_uniform (rng));
        break;
      case CNCLIP_TENSOR_BIAS:
      case CNCLIP_TENSOR_NORM_BIAS:
      case CNCLIP_TENSOR_EMBEDDING:
      default:
        out[i] = (float) (0.02 * rng_normal (rng));
        break;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */

static gboolean
write_text (const char *dir, const char *name, const char *contents, gssize len,
    GError **error)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *local = NULL;
  gboolean ok = g_file_set_contents (path, contents, len, &local);
  if (!ok) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s", local->message);
    g_error_free (local);
  }
  g_free (path);
  return ok;
}

/* The synthetic vocabulary of @size entries (see the top of this file). */
static GString *
synthetic_vocab (int size)
{
  GString *v = g_string_new ("[PAD]\n");
  int n = 1;
  for (; n < 100; n++)
    g_string_append_printf (v, "[unused%d]\n", n);
  g_string_append (v, "[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
  n += 4;
  for (int c = 33; c < 127 && n < size; c++, n++)
    g_string_append_printf (v, "%c\n", c);
  static const char suffixes[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (const char *s = suffixes; *s && n < size; s++, n++)
    g_string_append_printf (v, "##%c\n", *s);
  for (gunichar c = 0x4e00; n < size && c <= 0x9fff; c++, n++) {
    g_string_append_unichar (v, c);
    g_string_append_c (v, '\n');
  }
  /* Vocabularies beyond the CJK block: numbered filler pieces. */
  for (int k = 0; n < size; k++, n++)
    g_string_append_printf (v, "##x%d\n", k);
  return v;
}

static gboolean
write_vocab (const char *dir, const char *vocab_file, int vocab_size, GError **error)
{
  if (vocab_file == NULL) {
    GString *v = synthetic_vocab (vocab_size);
    gboolean ok = write_text (dir, "vocab.txt", v->str, (gssize) v->len, error);
    g_string_free (v, TRUE);
    return ok;
  }
  char *contents = NULL;
  gsize len = 0;
  GError *local = NULL;
  if (!g_file_get_contents (vocab_file, &contents, &len, &local)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s", local->message);
    g_error_free (local);
    return FALSE;
  }
  gsize lines = 0;
  for (gsize i = 0; i < len; i++)
    lines += contents[i] == '\n';
  if (len > 0 && contents[len - 1] != '\n')
    lines++;
  gboolean ok = FALSE;
  if (lines > (gsize) vocab_size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_VOCAB,
        "%s: %" G_GSIZE_FORMAT " entries, more than the model's vocab_size %d", vocab_file,
        lines, vocab_size);
  } else {
    ok = write_text (dir, "vocab.txt", contents, (gssize) len, error);
  }
  g_free (contents);
  return ok;
}

static gboolean
stream_write (FILE *f, const void *data, gsize size, const char *path, GError **error)
{
  if (size > 0 && fwrite (data, 1, size, f) != size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: write failed: %s", path,
        g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

typedef struct
{
  const char *name;
  gint64 length;
} PositionIds;

/* Writes model.safetensors: the two int64 position_ids buffers (as the
 * real checkpoint has them), then every float tensor of @config in
 * state-dict order, generated chunk by chunk. */
static gboolean
write_weights (const char *dir, const CnclipConfig *config, guint64 seed, GError **error)
{
  GArray *specs = cnclip_model_tensor_specs (config, TRUE, TRUE);
  const int side = config->vision.image_size / config->vision.patch_size;
  const PositionIds ids[2] = {
    { "text_model.embeddings.position_ids", config->text.max_position_embeddings },
    { "vision_model.embeddings.position_ids", (gint64) side * side + 1 },
  };

  GString *h = g_string_new ("{\"__metadata__\":{\"format\":\"pt\"}");
  gint64 offset = 0;
  for (int i = 0; i < 2; i++) {
    g_string_append_printf (h, ",\"%s\":{\"dtype\":\"I64\",\"shape\":[1,%" G_GINT64_FORMAT
        "],\"data_offsets\":[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "]}", ids[i].name,
        ids[i].length, offset, offset + 8 * ids[i].length);
    offset += 8 * ids[i].length;
  }
  for (guint i = 0; i < specs->len; i++) {
    const CnclipTensorSpec *s = &g_array_index (specs, CnclipTensorSpec, i);
    gint64 n = 1;
    g_string_append_printf (h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", s->name);
    for (int k = 0; k < s->ndim; k++) {
      g_string_append_printf (h, k ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, s->shape[k]);
      n *= s->shape[k];
    }
    g_string_append_printf (h, "],\"data_offsets\":[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "]}",
        offset, offset + 4 * n);
    offset += 4 * n;
  }
  g_string_append_c (h, '}');
  while ((8 + h->len) % 8)
    g_string_append_c (h, ' ');

  char *path = g_build_filename (dir, "model.safetensors", NULL);
  char *tmp = g_strconcat (path, ".tmp-XXXXXX", NULL);
  const gsize chunk = 1 << 16;
  float *buffer = g_new (float, chunk);
  gboolean ok = FALSE;
  FILE *f = NULL;
  int fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 || (f = fdopen (fd, "wb")) == NULL) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: cannot create: %s", path,
        g_strerror (errno));
    if (fd >= 0)
      close (fd);
    goto out;
  }

  guint64 le = GUINT64_TO_LE ((guint64) h->len);
  if (!stream_write (f, &le, 8, path, error) || !stream_write (f, h->str, h->len, path, error))
    goto out;
  for (int i = 0; i < 2; i++) {
    for (gint64 k = 0; k < ids[i].length; k++) {
      gint64 v = GINT64_TO_LE (k);
      if (!stream_write (f, &v, 8, path, error))
        goto out;
    }
  }
  for (guint i = 0; i < specs->len; i++) {
    const CnclipTensorSpec *s = &g_array_index (specs, CnclipTensorSpec, i);
    gint64 n = 1;
    for (int k = 0; k < s->ndim; k++)
      n *= s->shape[k];
    Rng rng;
    rng_init (&rng, seed, s->name);
    for (gint64 done = 0; done < n; done += (gint64) chunk) {
      gsize count = (gsize) MIN ((gint64) chunk, n - done);
      fill_random (&rng, s, buffer, count);
      if (!stream_write (f, buffer, count * sizeof (float), path, error))
        goto out;
    }
  }
  if (fflush (f) != 0 || fsync (fileno (f)) != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: %s", path, g_strerror (errno));
    goto out;
  }
  int rc = fclose (f);
  f = NULL;
  if (rc != 0 || g_rename (tmp, path) != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: %s", path, g_strerror (errno));
    goto out;
  }
  ok = TRUE;

out:
  if (f)
    fclose (f);
  if (!ok)
    g_unlink (tmp);
  g_free (buffer);
  g_free (tmp);
  g_free (path);
  g_string_free (h, TRUE);
  g_array_unref (specs);
  return ok;
}

int
cnclip_cmd_make_random_model (int argc, char **argv)
{
  const char *cmd = argv[0];
  char *preset = NULL, *vocab = NULL;
  gint64 seed = 0;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_STRING, &preset,
      "Sizes: base (ViT-B/16 + RoBERTa-base, 753 MB, default) or tiny (tests/data/cnclip-tiny)",
      "base|tiny" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &seed, "Random seed (default 0)", "N" },
    { "vocab", 0, 0, G_OPTION_ARG_FILENAME, &vocab,
      "Copy this vocab.txt instead of writing a synthetic one", "FILE" },
    { NULL }
  };
  int status = 1;
  if (!cli_parse (cmd, "OUTDIR",
          "Writes a model directory with random weights (for benchmarks and tests; the\n"
          "embeddings mean nothing). Without --vocab, vocab.txt is synthetic: the special\n"
          "tokens at their real ids, ASCII and single CJK ideographs, not the real ids.",
          entries, &argc, &argv))
    goto out;
  if (argc != 2) {
    status = cli_failf (cmd, "expected one OUTDIR argument (see --help)");
    goto out;
  }
  const char *config_json;
  if (preset == NULL || strcmp (preset, "base") == 0) {
    config_json = base_config;
  } else if (strcmp (preset, "tiny") == 0) {
    config_json = tiny_config;
  } else {
    status = cli_failf (cmd, "unknown --config '%s' (base, tiny)", preset);
    goto out;
  }

  const char *dir = argv[1];
  GError *error = NULL;
  if (g_mkdir_with_parents (dir, 0755) != 0) {
    status = cli_failf (cmd, "%s: cannot create: %s", dir, g_strerror (errno));
    goto out;
  }
  CnclipConfig config;
  if (!write_text (dir, "config.json", config_json, -1, &error)
      || !write_text (dir, "preprocessor_config.json", preprocessor_config, -1, &error)
      || !cnclip_config_load (dir, &config, &error)
      || !write_vocab (dir, vocab, config.text.vocab_size, &error)
      || !write_weights (dir, &config, (guint64) seed, &error)) {
    status = cli_fail (cmd, error);
    goto out;
  }
  status = 0;

out:
  g_free (preset);
  g_free (vocab);
  return status;
}

int
cnclip_cmd_convert (int argc, char **argv)
{
  const char *cmd = argv[0];
  char *weights = NULL;
  GOptionEntry entries[] = {
    { "weights-file", 'w', 0, G_OPTION_ARG_FILENAME, &weights,
      "Weights file to read (absolute or relative to MODEL_DIR; default: model.safetensors, "
      "pytorch_model.bin or the only *.pt)", "FILE" },
    { NULL }
  };
  int status = 1;
  if (!cli_parse (cmd, "MODEL_DIR OUT.safetensors",
          "Writes the weights of a model directory (safetensors, pytorch_model.bin or an\n"
          "official Chinese-CLIP .pt) as float32 safetensors with Hugging Face names.",
          entries, &argc, &argv))
    goto out;
  if (argc != 3) {
    status = cli_failf (cmd, "expected MODEL_DIR and OUT.safetensors (see --help)");
    goto out;
  }
  CnclipModelParams params = cnclip_model_default_params ();
  /* No inference: the backend that does not repack weights is enough. */
  params.backend = CNCLIP_BACKEND_OPENBLAS;
  params.weights_file = weights;
  GError *error = NULL;
  CnclipModel *model = cnclip_model_load (argv[1], &params, &error);
  if (model == NULL || !cnclip_model_save_safetensors (model, argv[2], &error)) {
    status = cli_fail (cmd, error);
  } else {
    status = 0;
  }
  cnclip_model_unref (model);

out:
  g_free (weights);
  return status;
}
