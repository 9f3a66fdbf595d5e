/* test-model-load.c: loading model directories (model.c): the fixture,
 * every class of broken directory, other dtypes and checkpoint formats,
 * pixel normalisation and saving as safetensors. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "test-util.h"
#include "model.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static CnclipModel *
load (const char *dir, CnclipModelParams *params, GError **error)
{
  CnclipModelParams p = params ? *params : cnclip_model_default_params ();
  /* OpenBLAS keeps linear->weight, so the tests can read every bound tensor. */
  if (p.backend == CNCLIP_BACKEND_AUTO)
    p.backend = CNCLIP_BACKEND_OPENBLAS;
  return cnclip_model_load (dir, &p, error);
}

static char *
tiny_dir (void)
{
  return test_data_path (TEST_TINY_MODEL);
}

/* A temp copy of the fixture directory. */
static char *
copy_of_tiny (void)
{
  char *src = tiny_dir ();
  char *dst = test_make_temp_dir ();
  test_copy_dir (src, dst);
  g_free (src);
  return dst;
}

static void
remove_file (const char *dir, const char *name)
{
  char *path = g_build_filename (dir, name, NULL);
  g_assert_cmpint (g_unlink (path), ==, 0);
  g_free (path);
}

static void
write_file (const char *dir, const char *name, const void *data, gssize len)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *error = NULL;
  g_file_set_contents (path, data, len, &error);
  g_assert_no_error (error);
  g_free (path);
}

/* Where a bound model keeps the float data of HF tensor @name (q/k/v are
 * slices of the fused matrices); NULL for tensors the model does not keep. */
static const float *
model_tensor (const CnclipModel *m, const char *name)
{
  const int W = m->config.vision.hidden_size, H = m->config.text.hidden_size;
  int layer, consumed = 0;
  char rest[96];
  static const struct
  {
    const char *name;
    gsize offset;
  } top[] = {
    { "vision_model.embeddings.class_embedding", G_STRUCT_OFFSET (CnclipModel, class_embedding) },
    { "vision_model.embeddings.position_embedding.weight", G_STRUCT_OFFSET (CnclipModel, vision_pos_embed) },
    { "vision_model.embeddings.patch_embedding.weight", G_STRUCT_OFFSET (CnclipModel, patch_embed.weight) },
    { "vision_model.pre_layrnorm.weight", G_STRUCT_OFFSET (CnclipModel, pre_ln.weight) },
    { "vision_model.pre_layrnorm.bias", G_STRUCT_OFFSET (CnclipModel, pre_ln.bias) },
    { "vision_model.post_layernorm.weight", G_STRUCT_OFFSET (CnclipModel, post_ln.weight) },
    { "vision_model.post_layernorm.bias", G_STRUCT_OFFSET (CnclipModel, post_ln.bias) },
    { "visual_projection.weight", G_STRUCT_OFFSET (CnclipModel, visual_projection.weight) },
    { "text_model.embeddings.word_embeddings.weight", G_STRUCT_OFFSET (CnclipModel, word_embeddings) },
    { "text_model.embeddings.position_embeddings.weight", G_STRUCT_OFFSET (CnclipModel, text_pos_embed) },
    { "text_model.embeddings.token_type_embeddings.weight", G_STRUCT_OFFSET (CnclipModel, token_type_embed) },
    { "text_model.embeddings.LayerNorm.weight", G_STRUCT_OFFSET (CnclipModel, embed_ln.weight) },
    { "text_model.embeddings.LayerNorm.bias", G_STRUCT_OFFSET (CnclipModel, embed_ln.bias) },
    { "text_projection.weight", G_STRUCT_OFFSET (CnclipModel, text_projection.weight) },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (top); i++) {
    if (strcmp (name, top[i].name) == 0)
      return G_STRUCT_MEMBER (const float *, m, top[i].offset);
  }
  if (sscanf (name, "vision_model.encoder.layers.%d.%95s%n", &layer, rest, &consumed) == 2
      && layer >= 0 && layer < m->config.vision.num_layers) {
    const CnclipVisionLayer *l = &m->vision_layers[layer];
    const gsize WW = (gsize) W * W;
    static const char *const qkv[3] = { "q_proj", "k_proj", "v_proj" };
    for (int k = 0; k < 3; k++) {
      char w[64], b[64];
      g_snprintf (w, sizeof (w), "self_attn.%s.weight", qkv[k]);
      g_snprintf (b, sizeof (b), "self_attn.%s.bias", qkv[k]);
      if (strcmp (rest, w) == 0)
        return l->qkv.weight + k * WW;
      if (strcmp (rest, b) == 0)
        return l->qkv.bias + k * W;
    }
    const struct
    {
      const char *suffix;
      const float *p;
    } map[] = {
      { "layer_norm1.weight", l->ln1.weight }, { "layer_norm1.bias", l->ln1.bias },
      { "layer_norm2.weight", l->ln2.weight }, { "layer_norm2.bias", l->ln2.bias },
      { "self_attn.out_proj.weight", l->out_proj.weight }, { "self_attn.out_proj.bias", l->out_proj.bias },
      { "mlp.fc1.weight", l->fc1.weight }, { "mlp.fc1.bias", l->fc1.bias },
      { "mlp.fc2.weight", l->fc2.weight }, { "mlp.fc2.bias", l->fc2.bias },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (map); i++) {
      if (strcmp (rest, map[i].suffix) == 0)
        return map[i].p;
    }
  }
  if (sscanf (name, "text_model.encoder.layer.%d.%95s", &layer, rest) == 2
      && layer >= 0 && layer < m->config.text.num_layers) {
    const CnclipTextLayer *l = &m->text_layers[layer];
    const gsize HH = (gsize) H * H;
    static const char *const qkv[3] = { "query", "key", "value" };
    for (int k = 0; k < 3; k++) {
      char w[64], b[64];
      g_snprintf (w, sizeof (w), "attention.self.%s.weight", qkv[k]);
      g_snprintf (b, sizeof (b), "attention.self.%s.bias", qkv[k]);
      if (strcmp (rest, w) == 0)
        return l->qkv.weight + k * HH;
      if (strcmp (rest, b) == 0)
        return l->qkv.bias + k * H;
    }
    const struct
    {
      const char *suffix;
      const float *p;
    } map[] = {
      { "attention.output.dense.weight", l->attn_out.weight }, { "attention.output.dense.bias", l->attn_out.bias },
      { "attention.output.LayerNorm.weight", l->attn_ln.weight }, { "attention.output.LayerNorm.bias", l->attn_ln.bias },
      { "intermediate.dense.weight", l->intermediate.weight }, { "intermediate.dense.bias", l->intermediate.bias },
      { "output.dense.weight", l->output.weight }, { "output.dense.bias", l->output.bias },
      { "output.LayerNorm.weight", l->out_ln.weight }, { "output.LayerNorm.bias", l->out_ln.bias },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (map); i++) {
      if (strcmp (rest, map[i].suffix) == 0)
        return map[i].p;
    }
  }
  return NULL;
}

typedef float (*RoundFunc) (float);

static float
identity (float x)
{
  return x;
}

/* float32 -> binary16 -> float32, round to nearest even (independent of
 * the library, which only widens). */
static float
round_f16 (float f)
{
  guint32 x;
  memcpy (&x, &f, 4);
  guint32 sign = x & 0x80000000u, a = x & 0x7fffffffu;
  float mag;
  memcpy (&mag, &a, 4);
  float r;
  if (a >= 0x477ff000u) {
    r = INFINITY;                /* 65520 and above round to infinity */
  } else if (a < 0x38800000u) {
    r = ldexpf (rintf (ldexpf (mag, 24)), -24);       /* subnormal: multiples of 2^-24 */
  } else {
    int e;
    float m = frexpf (mag, &e);  /* m in [0.5, 1): 11 significant bits */
    r = ldexpf (rintf (ldexpf (m, 11)), e - 11);
  }
  return sign ? -r : r;
}

static float
round_bf16 (float f)
{
  guint32 x;
  memcpy (&x, &f, 4);
  x = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
  memcpy (&f, &x, 4);
  return f;
}

/* Asserts every float tensor the model uses equals round(source) bit for bit,
 * @source being the fixture's float32 model.safetensors. Returns how many
 * elements the rounding changed. */
static gint64
assert_model_matches_fixture (const CnclipModel *m, RoundFunc round)
{
  gint64 rounded = 0;
  char *path = test_data_path ("cnclip-tiny/model.safetensors");
  GError *error = NULL;
  CnclipWeightFile *src = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);
  GArray *specs = cnclip_model_tensor_specs (&m->config, m->has_vision, m->has_text);
  guint checked = 0;
  for (guint i = 0; i < specs->len; i++) {
    const char *name = g_array_index (specs, CnclipTensorSpec, i).name;
    const CnclipTensorInfo *t = cnclip_weight_file_lookup (src, name);
    g_assert_nonnull (t);
    if (strcmp (name, "logit_scale") == 0) {
      float expect = round (cnclip_tensor_get_float (t, 0));
      g_assert_true (memcmp (&m->logit_scale, &expect, 4) == 0);
      checked++;
      continue;
    }
    const float *got = model_tensor (m, name);
    if (got == NULL)
      g_error ("%s not found in the model", name);
    for (gint64 k = 0; k < t->n_elements; k++) {
      float source = cnclip_tensor_get_float (t, k);
      float expect = round (source);
      rounded += expect != source;
      if (memcmp (&got[k], &expect, 4) != 0)
        g_error ("%s[%" G_GINT64_FORMAT "]: %.9g, expected %.9g", name, k, got[k], expect);
    }
    checked++;
  }
  g_assert_cmpuint (checked, ==, specs->len);
  g_array_unref (specs);
  cnclip_weight_file_free (src);
  g_free (path);
  return rounded;
}

/* Writes dst/model.safetensors from the fixture: header edited by @edit
 * (may be NULL), float tensors stored as @dtype (F32/F16/BF16). */
typedef void (*HeaderEdit) (JsonObject *header);

static void
write_variant (const char *dst_dir, CnclipDType dtype, HeaderEdit edit)
{
  char *path = test_data_path ("cnclip-tiny/model.safetensors");
  GError *error = NULL;
  CnclipWeightFile *src = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);

  JsonObject *header = json_object_new ();
  JsonObject *meta = json_object_new ();
  json_object_set_string_member (meta, "format", "pt");
  json_object_set_object_member (header, "__metadata__", meta);
  GByteArray *data = g_byte_array_new ();
  for (guint i = 0; i < cnclip_weight_file_get_n_tensors (src); i++) {
    const CnclipTensorInfo *t = cnclip_weight_file_get_tensor (src, i);
    JsonObject *e = json_object_new ();
    CnclipDType out = t->dtype == CNCLIP_DTYPE_F32 ? dtype : t->dtype;
    json_object_set_string_member (e, "dtype", cnclip_dtype_to_string (out));
    JsonArray *shape = json_array_new ();
    for (int k = 0; k < t->ndim; k++)
      json_array_add_int_element (shape, t->shape[k]);
    json_object_set_array_member (e, "shape", shape);
    JsonArray *offsets = json_array_new ();
    json_array_add_int_element (offsets, data->len);
    if (out == t->dtype) {
      g_byte_array_append (data, t->data, (guint) (t->n_elements * cnclip_dtype_size (t->dtype)));
    } else {
      for (gint64 k = 0; k < t->n_elements; k++) {
        float f = cnclip_tensor_get_float (t, k);
        guint16 h;
        if (out == CNCLIP_DTYPE_BF16) {
          float r = round_bf16 (f);
          guint32 bits;
          memcpy (&bits, &r, 4);
          h = (guint16) (bits >> 16);
        } else {
          /* encode round_f16(f) as binary16 */
          float r = round_f16 (f);
          guint32 bits;
          memcpy (&bits, &r, 4);
          guint32 sign = (bits >> 16) & 0x8000u, a = bits & 0x7fffffffu;
          float mag;
          memcpy (&mag, &a, 4);
          if (a == 0)
            h = (guint16) sign;
          else if (mag < 6.103515625e-5f)
            h = (guint16) (sign | (guint32) ldexpf (mag, 24));
          else
            h = (guint16) (sign | ((((a >> 23) - 112) << 10) | ((a >> 13) & 0x3ffu)));
        }
        g_byte_array_append (data, (guint8 *) &h, 2);
      }
    }
    json_array_add_int_element (offsets, data->len);
    json_object_set_array_member (e, "data_offsets", offsets);
    json_object_set_object_member (header, t->name, e);
  }
  if (edit)
    edit (header);

  JsonNode *root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, header);
  char *json = json_to_string (root, FALSE);
  GString *h = g_string_new (json);
  while ((8 + h->len) % 8)
    g_string_append_c (h, ' ');
  GByteArray *file = g_byte_array_new ();
  guint64 le = GUINT64_TO_LE ((guint64) h->len);
  g_byte_array_append (file, (guint8 *) &le, 8);
  g_byte_array_append (file, (guint8 *) h->str, h->len);
  g_byte_array_append (file, data->data, data->len);
  write_file (dst_dir, "model.safetensors", file->data, file->len);

  g_byte_array_unref (file);
  g_string_free (h, TRUE);
  g_free (json);
  json_node_unref (root);
  g_byte_array_unref (data);
  cnclip_weight_file_free (src);
  g_free (path);
}

static JsonObject *
entry (JsonObject *header, const char *name)
{
  JsonObject *e = json_object_get_object_member (header, name);
  g_assert_nonnull (e);
  return e;
}

static void
set_shape (JsonObject *e, gint64 d0, gint64 d1)
{
  JsonArray *shape = json_array_new ();
  json_array_add_int_element (shape, d0);
  if (d1 >= 0)
    json_array_add_int_element (shape, d1);
  json_object_set_array_member (e, "shape", shape);
}

/* ------------------------------------------------------------------------ */
/* The fixture                                                              */

/* Test that the fixture directory loads with the getters and model fields of
 * FIXTURES.md (sizes, activations, logit scale, name). */
static void
test_fixture (void)
{
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipModel *m = load (dir, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);

  g_assert_cmpstr (cnclip_model_get_name (m), ==, "cnclip-tiny");
  g_assert_true (g_path_is_absolute (cnclip_model_get_path (m)));
  g_assert_true (g_str_has_suffix (cnclip_model_get_path (m), "cnclip-tiny"));
  g_assert_true (g_str_has_suffix (cnclip_model_get_weights_path (m), "model.safetensors"));
  g_assert_cmpint (cnclip_model_get_projection_dim (m), ==, 64);
  g_assert_cmpint (cnclip_model_get_image_size (m), ==, 224);
  g_assert_cmpint (cnclip_model_get_context_length (m), ==, 52);
  g_assert_cmpfloat_with_epsilon (cnclip_model_get_logit_scale (m), 17.960562f, 1e-5);
  g_assert_cmpfloat (m->logit_scale, ==, 2.8881783485412598f);
  g_assert_cmpint (cnclip_model_get_backend (m), ==, CNCLIP_BACKEND_OPENBLAS);
  g_assert_cmpint (cnclip_model_get_precision (m), ==, CNCLIP_PRECISION_FP32);
  g_assert_true (cnclip_model_has_vision (m));
  g_assert_true (cnclip_model_has_text (m));
  g_assert_nonnull (cnclip_model_get_tokenizer (m));
  g_assert_cmpint (cnclip_tokenizer_get_vocab_size (cnclip_model_get_tokenizer (m)), ==, 21128);
  g_assert_cmpint (cnclip_model_vision_tokens (m), ==, 197);

  /* the resolved params are the model's own */
  g_assert_true (m->params.weights_file == m->weights_path);
  g_assert_cmpint (m->params.context_length, ==, 52);

  g_assert_cmpint (m->patch_embed.n_out, ==, 128);
  g_assert_cmpint (m->patch_embed.n_in, ==, 3 * 16 * 16);
  g_assert_null (m->patch_embed.bias);
  for (int l = 0; l < 2; l++) {
    const CnclipVisionLayer *v = &m->vision_layers[l];
    g_assert_cmpint (v->qkv.n_out, ==, 384);
    g_assert_cmpint (v->qkv.n_in, ==, 128);
    g_assert_cmpint (v->qkv.act, ==, CNCLIP_ACT_NONE);
    g_assert_cmpint (v->fc1.n_out, ==, 512);
    g_assert_cmpint (v->fc1.act, ==, CNCLIP_ACT_QUICK_GELU);
    g_assert_cmpint (v->fc2.n_in, ==, 512);
    g_assert_cmpint (v->fc2.act, ==, CNCLIP_ACT_NONE);
    const CnclipTextLayer *t = &m->text_layers[l];
    g_assert_cmpint (t->qkv.n_out, ==, 384);
    g_assert_cmpint (t->intermediate.act, ==, CNCLIP_ACT_GELU);
    g_assert_cmpint (t->output.act, ==, CNCLIP_ACT_NONE);
    g_assert_nonnull (t->attn_out.bias);
  }
  g_assert_cmpint (m->visual_projection.n_out, ==, 64);
  g_assert_cmpint (m->visual_projection.n_in, ==, 128);
  g_assert_null (m->visual_projection.bias);
  g_assert_null (m->text_projection.bias);

  /* float32 in place: zero copy from the mapping */
  const guint8 *base = cnclip_weight_file_get_data (m->weights);
  gsize size = cnclip_weight_file_get_size (m->weights);
  const guint8 *we = (const guint8 *) m->word_embeddings;
  g_assert_true (we >= base && we < base + size);

  assert_model_matches_fixture (m, identity);
  cnclip_model_unref (m);
  g_free (dir);
}

/* Test that the tensor list has exactly the fixture's 79 float tensors. */
static void
test_specs (void)
{
  char *path = test_data_path ("cnclip-tiny/model.safetensors");
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipWeightFile *src = cnclip_safetensors_open (path, &error);
  g_assert_no_error (error);
  CnclipConfig config;
  g_assert_true (cnclip_config_load (dir, &config, &error));
  GArray *specs = cnclip_model_tensor_specs (&config, TRUE, TRUE);
  g_assert_cmpuint (specs->len, ==, 79);
  for (guint i = 0; i < specs->len; i++) {
    const CnclipTensorSpec *s = &g_array_index (specs, CnclipTensorSpec, i);
    const CnclipTensorInfo *t = cnclip_weight_file_lookup (src, s->name);
    if (t == NULL)
      g_error ("spec %s is not in the fixture", s->name);
    g_assert_cmpint (t->dtype, ==, CNCLIP_DTYPE_F32);
    g_assert_cmpint (t->ndim, ==, s->ndim);
    for (int k = 0; k < s->ndim; k++)
      g_assert_cmpint (t->shape[k], ==, s->shape[k]);
  }
  g_assert_cmpstr (g_array_index (specs, CnclipTensorSpec, 0).name, ==, "logit_scale");
  g_array_unref (specs);
  /* towers can be left out */
  specs = cnclip_model_tensor_specs (&config, FALSE, TRUE);
  g_assert_cmpuint (specs->len, ==, 1 + 3 + 2 + 2 * 16 + 1);
  g_array_unref (specs);
  cnclip_weight_file_free (src);
  g_free (dir);
  g_free (path);
}

/* Test that references are counted: the model stays valid until the last
 * unref. */
static void
test_refcount (void)
{
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipModelParams p = cnclip_model_default_params ();
  p.load_text = FALSE;
  CnclipModel *m = load (dir, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (m->ref_count, ==, 1);
  g_assert_true (cnclip_model_ref (m) == m);
  g_assert_cmpint (m->ref_count, ==, 2);
  cnclip_model_unref (m);
  g_assert_cmpint (m->ref_count, ==, 1);
  g_assert_cmpint (cnclip_model_get_projection_dim (m), ==, 64);
  cnclip_model_unref (m);
  cnclip_model_unref (NULL);
  g_free (dir);
}

/* Test that default params are what cnclip.h documents. */
static void
test_default_params (void)
{
  CnclipModelParams p = cnclip_model_default_params ();
  g_assert_null (p.weights_file);
  g_assert_cmpint (p.backend, ==, CNCLIP_BACKEND_AUTO);
  g_assert_cmpint (p.precision, ==, CNCLIP_PRECISION_FP32);
  g_assert_true (p.load_vision);
  g_assert_true (p.load_text);
  g_assert_cmpint (p.context_length, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Broken directories                                                       */

static void
break_config (const char *dir)
{
  write_file (dir, "config.json", "{\"vision_config\": {\"hidden_size\": \"128\"}}", -1);
}

static void
break_config_missing (const char *dir)
{
  remove_file (dir, "config.json");
}

static void
break_vocab_missing (const char *dir)
{
  remove_file (dir, "vocab.txt");
}

static void
break_vocab_too_long (const char *dir)
{
  char *path = g_build_filename (dir, "vocab.txt", NULL);
  char *contents;
  gsize len;
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  char *more = g_strconcat (contents, "extra1\nextra2\n", NULL);
  write_file (dir, "vocab.txt", more, -1);
  g_free (more);
  g_free (contents);
  g_free (path);
}

static void
break_weights_missing (const char *dir)
{
  remove_file (dir, "model.safetensors");
}

static void
break_two_checkpoints (const char *dir)
{
  remove_file (dir, "model.safetensors");
  write_file (dir, "a.pt", "PK\3\4", 4);
  write_file (dir, "b.pt", "PK\3\4", 4);
}

static void
break_truncated (const char *dir)
{
  char *path = g_build_filename (dir, "model.safetensors", NULL);
  struct stat st;
  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_cmpint (truncate (path, st.st_size / 2), ==, 0);
  g_free (path);
}

static void
break_lying_header (const char *dir)
{
  char *path = g_build_filename (dir, "model.safetensors", NULL);
  FILE *f = fopen (path, "r+b");
  g_assert_nonnull (f);
  guint64 le = GUINT64_TO_LE (G_GUINT64_CONSTANT (20000000));
  g_assert_cmpint (fwrite (&le, 8, 1, f), ==, 1);
  fclose (f);
  g_free (path);
}

static void
edit_bad_offsets (JsonObject *h)
{
  JsonArray *o = json_array_new ();
  json_array_add_int_element (o, 100000000);
  json_array_add_int_element (o, 100000512);
  json_object_set_array_member (entry (h, "vision_model.post_layernorm.bias"), "data_offsets", o);
}

static void
break_offsets (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_bad_offsets);
}

/* Same element count, wrong shape. */
static void
edit_wrong_shape (JsonObject *h)
{
  set_shape (entry (h, "vision_model.encoder.layers.0.mlp.fc1.weight"), 1024, 64);
}

static void
break_shape (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_wrong_shape);
}

static void
edit_missing (JsonObject *h)
{
  json_object_remove_member (h, "text_model.encoder.layer.1.output.LayerNorm.bias");
}

static void
break_missing_tensor (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_missing);
}

static void
edit_missing_vision (JsonObject *h)
{
  json_object_remove_member (h, "vision_model.encoder.layers.1.self_attn.k_proj.weight");
}

/* class_embedding: 128 F32 = 512 bytes = 64 I64 */
static void
edit_i64 (JsonObject *h)
{
  JsonObject *e = entry (h, "vision_model.embeddings.class_embedding");
  json_object_set_string_member (e, "dtype", "I64");
  set_shape (e, 64, -1);
}

static void
break_dtype (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_i64);
}

static void
edit_unusable (JsonObject *h)
{
  JsonObject *e = entry (h, "text_projection.weight");
  json_object_set_string_member (e, "dtype", "F8_E4M3");
  set_shape (e, 128, 256);
}

static void
break_unusable (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_unusable);
}

static void
edit_qkv_i64 (JsonObject *h)
{
  JsonObject *e = entry (h, "text_model.encoder.layer.0.attention.self.value.bias");
  json_object_set_string_member (e, "dtype", "I32");
}

static void
break_qkv_dtype (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_qkv_i64);
}

static void
edit_logit_scale (JsonObject *h)
{
  JsonObject *e = entry (h, "logit_scale");
  set_shape (e, 1, 1);
  JsonArray *offsets = json_object_get_array_member (e, "data_offsets");
  g_assert_cmpint (json_array_get_int_element (offsets, 1) - json_array_get_int_element (offsets, 0), ==, 4);
}

static void
break_logit_scale_shape (const char *dir)
{
  write_variant (dir, CNCLIP_DTYPE_F32, edit_logit_scale);
}

typedef struct
{
  const char *what;
  void (*breaker) (const char *dir);
  int code;
  const char *message;           /* substring of the message, or NULL */
} BrokenDir;

static const BrokenDir broken_dirs[] = {
  { "missing config", break_config_missing, CNCLIP_ERROR_IO, "config.json" },
  { "bad config", break_config, CNCLIP_ERROR_CONFIG, "vision_config.hidden_size" },
  { "missing vocab", break_vocab_missing, CNCLIP_ERROR_VOCAB, "vocab.txt" },
  { "vocab beyond the embedding table", break_vocab_too_long, CNCLIP_ERROR_VOCAB, "21130" },
  { "missing weights", break_weights_missing, CNCLIP_ERROR_IO, "model.safetensors" },
  { "several checkpoints", break_two_checkpoints, CNCLIP_ERROR_IO, "a.pt, b.pt" },
  { "truncated safetensors", break_truncated, CNCLIP_ERROR_FORMAT, "model.safetensors" },
  { "lying header", break_lying_header, CNCLIP_ERROR_FORMAT, "header" },
  { "bad offsets", break_offsets, CNCLIP_ERROR_FORMAT, "vision_model.post_layernorm.bias" },
  { "wrong shape", break_shape, CNCLIP_ERROR_SHAPE,
    "tensor vision_model.encoder.layers.0.mlp.fc1.weight has shape [1024, 64], expected [512, 128]" },
  { "missing tensor", break_missing_tensor, CNCLIP_ERROR_MISSING_TENSOR,
    "text_model.encoder.layer.1.output.LayerNorm.bias" },
  { "I64 where F32 is needed", break_dtype, CNCLIP_ERROR_DTYPE, "I64" },
  { "unusable dtype needed", break_unusable, CNCLIP_ERROR_DTYPE, "F8_E4M3" },
  { "I32 qkv bias", break_qkv_dtype, CNCLIP_ERROR_DTYPE, "value.bias" },
  { "logit_scale [1,1]", break_logit_scale_shape, CNCLIP_ERROR_SHAPE, "logit_scale" },
};

/* Test that each class of broken model directory fails with its code and a
 * message that names what is wrong. */
static void
test_broken_dir (gconstpointer data)
{
  const BrokenDir *b = data;
  char *dir = copy_of_tiny ();
  b->breaker (dir);
  GError *error = NULL;
  CnclipModel *m = load (dir, NULL, &error);
  g_assert_null (m);
  g_assert_nonnull (error);
  if (b->message && strstr (error->message, b->message) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, b->message);
  test_assert_error (error, CNCLIP_ERROR, b->code);
  g_free (dir);
}

/* Test that a missing directory, bad params and an unavailable precision
 * are refused before anything is read. */
static void
test_bad_arguments (void)
{
  GError *error = NULL;
  char *dir = test_make_temp_dir ();
  char *missing = g_build_filename (dir, "no-such-model", NULL);
  g_assert_null (load (missing, NULL, &error));
  g_assert_nonnull (strstr (error->message, "no-such-model"));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  char *tiny = tiny_dir ();
  CnclipModelParams p = cnclip_model_default_params ();
  p.load_text = p.load_vision = FALSE;
  g_assert_null (load (tiny, &p, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);

  static const int bad_lengths[] = { 1, -1, 513 };
  for (gsize i = 0; i < G_N_ELEMENTS (bad_lengths); i++) {
    p = cnclip_model_default_params ();
    p.context_length = bad_lengths[i];
    g_assert_null (load (tiny, &p, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);
  }

  p = cnclip_model_default_params ();
  p.backend = CNCLIP_BACKEND_OPENBLAS;
  p.precision = CNCLIP_PRECISION_BF16;
  g_assert_null (load (tiny, &p, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_BACKEND);

  p = cnclip_model_default_params ();
  p.context_length = 77;
  p.load_vision = FALSE;
  CnclipModel *m = load (tiny, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cnclip_model_get_context_length (m), ==, 77);
  cnclip_model_unref (m);

  g_free (tiny);
  g_free (missing);
  g_free (dir);
}

/* Test that unknown extra tensors (even of unusable dtypes) and a [1]-shaped
 * logit_scale are accepted. */
static void
edit_extras (JsonObject *h)
{
  JsonObject *e = json_object_new ();
  json_object_set_string_member (e, "dtype", "Q4_0");
  JsonArray *o = json_array_new ();
  json_array_add_int_element (o, 0);
  json_array_add_int_element (o, 4);
  json_object_set_array_member (e, "data_offsets", o);
  set_shape (e, 7, -1);
  json_object_set_object_member (h, "text_model.pooler.dense.weight", e);
  set_shape (entry (h, "logit_scale"), 1, -1);
}

static void
test_extras_accepted (void)
{
  char *dir = copy_of_tiny ();
  write_variant (dir, CNCLIP_DTYPE_F32, edit_extras);
  GError *error = NULL;
  CnclipModel *m = load (dir, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat_with_epsilon (cnclip_model_get_logit_scale (m), 17.960562f, 1e-5);
  assert_model_matches_fixture (m, identity);
  cnclip_model_unref (m);
  g_free (dir);
}

/* Test that weights_file picks the file (relative to the directory or
 * absolute) and that the format is found by content, not by name. */
static void
test_weights_file (void)
{
  char *dir = copy_of_tiny ();
  char *src = g_build_filename (dir, "model.safetensors", NULL);
  char *other = g_build_filename (dir, "weights-v2.bin", NULL);
  g_assert_cmpint (g_rename (src, other), ==, 0);
  GError *error = NULL;

  /* nothing under a default name */
  g_assert_null (load (dir, NULL, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  CnclipModelParams p = cnclip_model_default_params ();
  p.weights_file = "weights-v2.bin";
  CnclipModel *m = load (dir, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cnclip_model_get_weights_path (m), ==, other);
  cnclip_model_unref (m);

  p.weights_file = other;
  m = load (dir, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cnclip_model_get_weights_path (m), ==, other);
  cnclip_model_unref (m);

  p.weights_file = "absent.safetensors";
  g_assert_null (load (dir, &p, &error));
  g_assert_nonnull (strstr (error->message, "absent.safetensors"));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  /* a lone *.pt holding safetensors data loads as safetensors */
  char *pt = g_build_filename (dir, "checkpoint.pt", NULL);
  g_assert_cmpint (g_rename (other, pt), ==, 0);
  m = load (dir, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cnclip_model_get_weights_path (m), ==, pt);
  assert_model_matches_fixture (m, identity);
  cnclip_model_unref (m);

  g_free (pt);
  g_free (other);
  g_free (src);
  g_free (dir);
}

/* Test that F16 and BF16 copies of the fixture load and every tensor equals
 * the correspondingly rounded float32 value bit for bit. */
static void
test_half_precision (gconstpointer data)
{
  CnclipDType dtype = GPOINTER_TO_INT (data);
  char *dir = copy_of_tiny ();
  write_variant (dir, dtype, NULL);
  GError *error = NULL;
  CnclipModel *m = load (dir, NULL, &error);
  g_assert_no_error (error);
  const CnclipTensorInfo *t = cnclip_weight_file_lookup (m->weights, "visual_projection.weight");
  g_assert_cmpint (t->dtype, ==, dtype);
  /* the rounding is real: most values differ from float32 */
  g_assert_cmpint (assert_model_matches_fixture (m,
          dtype == CNCLIP_DTYPE_F16 ? round_f16 : round_bf16), >, 1000000);
  cnclip_model_unref (m);
  g_free (dir);
}

/* Test that load_text = FALSE skips the text tower and the vocabulary, and
 * load_vision = FALSE the vision tower, even when their files are absent. */
static void
test_single_tower (void)
{
  char *dir = copy_of_tiny ();
  remove_file (dir, "vocab.txt");
  GError *error = NULL;
  CnclipModelParams p = cnclip_model_default_params ();
  p.load_text = FALSE;
  CnclipModel *m = load (dir, &p, &error);
  g_assert_no_error (error);
  g_assert_true (cnclip_model_has_vision (m));
  g_assert_false (cnclip_model_has_text (m));
  g_assert_null (cnclip_model_get_tokenizer (m));
  g_assert_null (m->text_layers);
  g_assert_null (m->word_embeddings);
  g_assert_nonnull (m->vision_layers);
  assert_model_matches_fixture (m, identity);
  cnclip_model_unref (m);
  g_free (dir);

  dir = copy_of_tiny ();
  write_variant (dir, CNCLIP_DTYPE_F32, edit_missing_vision);
  p = cnclip_model_default_params ();
  p.load_vision = FALSE;
  m = load (dir, &p, &error);
  g_assert_no_error (error);
  g_assert_false (cnclip_model_has_vision (m));
  g_assert_true (cnclip_model_has_text (m));
  g_assert_null (m->vision_layers);
  g_assert_null (m->patch_embed.weight);
  assert_model_matches_fixture (m, identity);
  cnclip_model_unref (m);

  /* the same file with the vision tower fails */
  g_assert_null (load (dir, NULL, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_MISSING_TENSOR);
  g_free (dir);
}

/* Test that both PyTorch checkpoints of the fixture load to exactly the same
 * tensors, and that pytorch_model.bin's q/k/v views are fused in place. */
static void
test_torch_checkpoints (gconstpointer data)
{
  const char *name = data;
  char *dir = test_data_path (name);
  GError *error = NULL;
  CnclipModel *m = load (dir, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  g_assert_cmpfloat (m->logit_scale, ==, 2.8881783485412598f);
  assert_model_matches_fixture (m, identity);
  if (strcmp (name, TEST_TINY_BIN_MODEL) == 0) {
    const guint8 *base = cnclip_weight_file_get_data (m->weights);
    gsize size = cnclip_weight_file_get_size (m->weights);
    const guint8 *qkv = (const guint8 *) m->vision_layers[1].qkv.weight;
    g_assert_true (qkv >= base && qkv < base + size);
  }
  cnclip_model_unref (m);
  g_free (dir);
}

/* Test that with a backend that packs weights (releases_source) the
 * sources are let go after packing, and the model still saves every tensor
 * exactly (from the file, not from the packed copies). */
static void
test_packing_backend (void)
{
  if (!cnclip_backend_available (CNCLIP_BACKEND_ONEDNN)) {
    g_test_skip ("oneDNN backend not built");
    return;
  }
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipModelParams p = cnclip_model_default_params ();
  p.backend = CNCLIP_BACKEND_ONEDNN;
  CnclipModel *m = cnclip_model_load (dir, &p, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cnclip_model_get_backend (m), ==, CNCLIP_BACKEND_ONEDNN);
  if (m->backend->ops->releases_source) {
    g_assert_null (m->vision_layers[0].qkv.weight);
    g_assert_null (m->text_layers[1].intermediate.weight);
    g_assert_null (m->patch_embed.weight);
    g_assert_nonnull (m->vision_layers[0].qkv.bias);
    /* of the owned buffers only the four fused q/k/v biases remain */
    g_assert_cmpuint (m->owned->len, ==, 4);
  }
  char *out_dir = copy_of_tiny ();
  char *out = g_build_filename (out_dir, "model.safetensors", NULL);
  g_assert_true (cnclip_model_save_safetensors (m, out, &error));
  g_assert_no_error (error);
  cnclip_model_unref (m);
  m = load (out_dir, NULL, &error);
  g_assert_no_error (error);
  assert_model_matches_fixture (m, identity);
  cnclip_model_unref (m);
  g_free (out);
  g_free (out_dir);
  g_free (dir);
}

/* ------------------------------------------------------------------------ */
/* Pixels                                                                   */

/* Test that normalising each golden resized image gives the golden
 * pixel_values bit for bit. */
static void
test_normalize (void)
{
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipModelParams p = cnclip_model_default_params ();
  p.load_text = FALSE;
  CnclipModel *m = load (dir, &p, &error);
  g_assert_no_error (error);

  int ndim;
  gint64 shape[8];
  float *expected = test_golden_tensor ("pixel_values", &ndim, shape);
  g_assert_cmpint (ndim, ==, 4);
  g_assert_cmpint (shape[0], ==, test_golden_n_images ());
  const gsize plane = 3 * 224 * 224;
  float *out = g_new (float, plane);
  for (int i = 0; i < test_golden_n_images (); i++) {
    const TestGoldenImage *im = test_golden_image (i);
    char *rel = g_build_filename (TEST_TINY_MODEL, "golden", im->resized_rgb, NULL);
    char *path = test_data_path (rel);
    gsize len;
    guint8 *rgb = test_read_file (path, &len);
    g_assert_cmpuint (len, ==, 224 * 224 * 3);
    cnclip_model_normalize_pixels (m, rgb, out);
    g_assert_true (memcmp (out, expected + i * plane, plane * sizeof (float)) == 0);
    g_free (rgb);
    g_free (path);
    g_free (rel);
  }
  g_free (out);
  g_free (expected);
  cnclip_model_unref (m);
  g_free (dir);
}

/* Test that full preprocessing (convert, resize, normalise) of each golden
 * image matches pixel_values within 1e-6, from RGB, padded RGB and RGBA. */
static void
test_preprocess (void)
{
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipModelParams p = cnclip_model_default_params ();
  p.load_text = FALSE;
  CnclipModel *m = load (dir, &p, &error);
  g_assert_no_error (error);

  float *expected = test_golden_tensor ("pixel_values", NULL, NULL);
  const gsize plane = 3 * 224 * 224;
  float *out = g_new (float, plane);
  for (int i = 0; i < test_golden_n_images (); i++) {
    const TestGoldenImage *im = test_golden_image (i);
    char *rel = g_build_filename (TEST_TINY_MODEL, "golden", im->rgb, NULL);
    char *path = test_data_path (rel);
    gsize len;
    guint8 *rgb = test_read_file (path, &len);
    const int w = im->width, h = im->height;
    g_assert_cmpuint (len, ==, (gsize) w * h * 3);

    CnclipImage image = { .format = CNCLIP_PIXEL_RGB, .width = w, .height = h,
      .planes = { rgb }, .strides = { w * 3 } };
    g_assert_true (cnclip_model_preprocess (m, &image, out, &error));
    g_assert_no_error (error);
    g_assert_cmpfloat (test_max_abs_diff (out, expected + i * plane, plane), <=, 1e-6);

    /* padded rows and RGBA (alpha dropped) give the same pixels */
    const int stride = w * 4 + 8;
    guint8 *rgba = g_malloc0 ((gsize) stride * h);
    guint8 *padded = g_malloc0 ((gsize) (w * 3 + 5) * h);
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        memcpy (rgba + (gsize) y * stride + x * 4, rgb + ((gsize) y * w + x) * 3, 3);
        rgba[(gsize) y * stride + x * 4 + 3] = (guint8) (x * 7 + y);
      }
      memcpy (padded + (gsize) y * (w * 3 + 5), rgb + (gsize) y * w * 3, (gsize) w * 3);
    }
    CnclipImage im_rgba = { .format = CNCLIP_PIXEL_RGBA, .width = w, .height = h,
      .planes = { rgba }, .strides = { stride } };
    g_assert_true (cnclip_model_preprocess (m, &im_rgba, out, &error));
    g_assert_cmpfloat (test_max_abs_diff (out, expected + i * plane, plane), <=, 1e-6);
    CnclipImage im_pad = { .format = CNCLIP_PIXEL_RGB, .width = w, .height = h,
      .planes = { padded }, .strides = { w * 3 + 5 } };
    g_assert_true (cnclip_model_preprocess (m, &im_pad, out, &error));
    g_assert_cmpfloat (test_max_abs_diff (out, expected + i * plane, plane), <=, 1e-6);

    g_free (padded);
    g_free (rgba);
    g_free (rgb);
    g_free (path);
    g_free (rel);
  }

  CnclipImage empty = { .format = CNCLIP_PIXEL_RGB, .width = 0, .height = 10,
    .planes = { (const guint8 *) "" }, .strides = { 0 } };
  g_assert_false (cnclip_model_preprocess (m, &empty, out, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_INVALID_ARGUMENT);

  g_free (out);
  g_free (expected);
  cnclip_model_unref (m);
  g_free (dir);
}

/* ------------------------------------------------------------------------ */
/* Saving                                                                   */

static guint
count_entries (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  guint n = 0;
  while (g_dir_read_name (d))
    n++;
  g_dir_close (d);
  return n;
}

/* Test that a saved model reloads with every tensor equal to the source
 * (also from a BF16 source, which is saved widened) and that the file is
 * float32-only with an 8-aligned data section. */
static void
test_save_round_trip (gconstpointer data)
{
  CnclipDType dtype = GPOINTER_TO_INT (data);
  char *src_dir = copy_of_tiny ();
  if (dtype != CNCLIP_DTYPE_F32)
    write_variant (src_dir, dtype, NULL);
  GError *error = NULL;
  CnclipModel *m = load (src_dir, NULL, &error);
  g_assert_no_error (error);

  char *out_dir = copy_of_tiny ();
  remove_file (out_dir, "model.safetensors");
  char *out = g_build_filename (out_dir, "model.safetensors", NULL);
  g_assert_true (cnclip_model_save_safetensors (m, out, &error));
  g_assert_no_error (error);
  /* no temporary left next to it */
  g_assert_cmpuint (count_entries (out_dir), ==, count_entries (src_dir));

  CnclipWeightFile *saved = cnclip_safetensors_open (out, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (cnclip_weight_file_get_n_tensors (saved), ==, 79);
  for (guint i = 0; i < 79; i++) {
    const CnclipTensorInfo *t = cnclip_weight_file_get_tensor (saved, i);
    g_assert_cmpint (t->dtype, ==, CNCLIP_DTYPE_F32);
    g_assert_cmpuint ((guintptr) (t->data - cnclip_weight_file_get_data (saved)) % 4, ==, 0);
  }
  guint64 header_len;
  memcpy (&header_len, cnclip_weight_file_get_data (saved), 8);
  g_assert_cmpuint ((8 + header_len) % 8, ==, 0);
  cnclip_weight_file_free (saved);

  CnclipModel *reloaded = load (out_dir, NULL, &error);
  g_assert_no_error (error);
  RoundFunc round = dtype == CNCLIP_DTYPE_BF16 ? round_bf16
      : dtype == CNCLIP_DTYPE_F16 ? round_f16 : identity;
  assert_model_matches_fixture (reloaded, round);
  cnclip_model_unref (reloaded);

  /* saving over an existing file replaces it */
  g_assert_true (cnclip_model_save_safetensors (m, out, &error));
  g_assert_no_error (error);

  cnclip_model_unref (m);
  g_free (out);
  g_free (out_dir);
  g_free (src_dir);
}

/* Test that saving where it cannot work is an I/O error that leaves no
 * file behind: /dev/full, a missing directory, a path below a file, and
 * (when not root) a read-only directory. */
static void
test_save_errors (void)
{
  char *dir = tiny_dir ();
  GError *error = NULL;
  CnclipModelParams p = cnclip_model_default_params ();
  p.load_text = FALSE;
  CnclipModel *m = load (dir, &p, &error);
  g_assert_no_error (error);

  g_assert_false (cnclip_model_save_safetensors (m, "/dev/full", &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  struct stat st;
  g_assert_cmpint (stat ("/dev/full", &st), ==, 0);
  g_assert_true (S_ISCHR (st.st_mode));

  char *tmp = test_make_temp_dir ();
  char *missing = g_build_filename (tmp, "no", "such", "dir", "model.safetensors", NULL);
  g_assert_false (cnclip_model_save_safetensors (m, missing, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  char *file = g_build_filename (tmp, "plain-file", NULL);
  g_assert_true (g_file_set_contents (file, "x", 1, NULL));
  char *below = g_build_filename (file, "model.safetensors", NULL);
  g_assert_false (cnclip_model_save_safetensors (m, below, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  char *as_dir = g_build_filename (tmp, "a-directory", NULL);
  g_assert_cmpint (g_mkdir (as_dir, 0700), ==, 0);
  g_assert_false (cnclip_model_save_safetensors (m, as_dir, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_assert_true (g_file_test (as_dir, G_FILE_TEST_IS_DIR));

  if (geteuid () != 0) {
    char *ro = g_build_filename (tmp, "read-only", NULL);
    g_assert_cmpint (g_mkdir (ro, 0500), ==, 0);
    char *target = g_build_filename (ro, "model.safetensors", NULL);
    g_assert_false (cnclip_model_save_safetensors (m, target, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
    g_assert_cmpuint (count_entries (ro), ==, 0);
    g_chmod (ro, 0700);
    g_free (target);
    g_free (ro);
  }
  /* only what the test made itself */
  g_assert_cmpuint (count_entries (tmp), ==, geteuid () != 0 ? 3 : 2);

  g_free (as_dir);
  g_free (below);
  g_free (file);
  g_free (missing);
  g_free (tmp);
  cnclip_model_unref (m);
  g_free (dir);
}

/* Test that a write failure half-way (a full disk, simulated with a file
 * size limit) is an I/O error and removes the partial file. */
static void
test_save_disk_full (void)
{
  if (g_test_subprocess ()) {
    char *dir = tiny_dir ();
    GError *error = NULL;
    CnclipModelParams p = cnclip_model_default_params ();
    p.load_text = FALSE;
    CnclipModel *m = load (dir, &p, &error);
    g_assert_no_error (error);
    char *tmp = test_make_temp_dir ();
    char *out = g_build_filename (tmp, "model.safetensors", NULL);

    signal (SIGXFSZ, SIG_IGN);
    struct rlimit rl;
    g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &rl), ==, 0);
    rl.rlim_cur = 256 * 1024;
    g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &rl), ==, 0);

    g_assert_false (cnclip_model_save_safetensors (m, out, &error));
    test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
    g_assert_cmpuint (count_entries (tmp), ==, 0);
    cnclip_model_unref (m);
    g_free (out);
    g_free (tmp);
    g_free (dir);
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/model-load/fixture", test_fixture);
  g_test_add_func ("/model-load/specs", test_specs);
  g_test_add_func ("/model-load/refcount", test_refcount);
  g_test_add_func ("/model-load/default-params", test_default_params);
  g_test_add_func ("/model-load/bad-arguments", test_bad_arguments);
  g_test_add_func ("/model-load/extras-accepted", test_extras_accepted);
  g_test_add_func ("/model-load/weights-file", test_weights_file);
  g_test_add_data_func ("/model-load/f16", GINT_TO_POINTER (CNCLIP_DTYPE_F16), test_half_precision);
  g_test_add_data_func ("/model-load/bf16", GINT_TO_POINTER (CNCLIP_DTYPE_BF16), test_half_precision);
  g_test_add_func ("/model-load/single-tower", test_single_tower);
  g_test_add_data_func ("/model-load/torch/pytorch_model.bin", TEST_TINY_BIN_MODEL,
      test_torch_checkpoints);
  g_test_add_data_func ("/model-load/torch/official-pt", TEST_TINY_OFFICIAL_MODEL,
      test_torch_checkpoints);
  g_test_add_func ("/model-load/packing-backend", test_packing_backend);
  g_test_add_func ("/model-load/normalize", test_normalize);
  g_test_add_func ("/model-load/preprocess", test_preprocess);
  g_test_add_data_func ("/model-load/save/f32", GINT_TO_POINTER (CNCLIP_DTYPE_F32),
      test_save_round_trip);
  g_test_add_data_func ("/model-load/save/bf16", GINT_TO_POINTER (CNCLIP_DTYPE_BF16),
      test_save_round_trip);
  g_test_add_data_func ("/model-load/save/f16", GINT_TO_POINTER (CNCLIP_DTYPE_F16),
      test_save_round_trip);
  g_test_add_func ("/model-load/save/errors", test_save_errors);
  g_test_add_func ("/model-load/save/disk-full", test_save_disk_full);
  for (gsize i = 0; i < G_N_ELEMENTS (broken_dirs); i++) {
    char *name = g_strdup_printf ("/model-load/broken/%s", broken_dirs[i].what);
    for (char *p = name; *p; p++) {
      if (*p == ' ' || *p == ',' || *p == '[' || *p == ']')
        *p = '-';
    }
    g_test_add_data_func (name, &broken_dirs[i], test_broken_dir);
    g_free (name);
  }
  return g_test_run ();
}
