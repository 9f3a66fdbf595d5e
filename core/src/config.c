/* config.c: config.json, preprocessor_config.json and tokenizer_config.json
 * of a Hugging Face ChineseCLIP directory -> CnclipConfig (see model.h).
 *
 * Missing keys take the Hugging Face defaults (FIXTURES.md 1.1), including
 * the two surprising ones: vision patch_size 32 and text vocab_size 30522.
 * A null value counts as missing; text_config_dict / vision_config_dict
 * (older transformers) override text_config / vision_config key by key.
 * Values of the wrong JSON type, zero or negative sizes, heads that do not
 * divide a width, an image size that is not a multiple of the patch size and
 * activations other than gelu / quick_gelu are CNCLIP_ERROR_CONFIG naming
 * the file and key. Sizes beyond the limits below are CNCLIP_ERROR_TOO_LARGE,
 * refused before anything is allocated (the real model is far below every
 * one of them).
 *
 * Preprocessing always follows the official cn_clip transform (straight
 * bicubic resize to image_size, normalise); preprocessor_config.json
 * contributes image_mean / image_std and its size is checked against
 * vision_config.image_size. Its do_* flags and resample are not read.
 *
 * Context length: tokenizer_config.json model_max_length when it is an
 * integer in [2, max_position_embeddings]; otherwise (absent, or Hugging
 * Face's 1e30 "no limit") the cn_clip value 52, or max_position_embeddings
 * when that is smaller.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <json-glib/json-glib.h>

#include "model.h"

#define LIMIT_HIDDEN 65536
#define LIMIT_INTERMEDIATE 262144
#define LIMIT_LAYERS 1000
#define LIMIT_HEADS 4096
#define LIMIT_VOCAB 10000000
#define LIMIT_POSITIONS 65536
#define LIMIT_TYPE_VOCAB 1024
#define LIMIT_IMAGE 4096
#define LIMIT_PROJECTION 65536
/* (image_size / patch_size)^2 + 1: 197 for ViT-B/16, 577 for ViT-L/14@336. */
#define LIMIT_VISION_TOKENS 4097
/* Config files are 1-2 KB; json-glib needs ~30 bytes per byte parsed. */
#define LIMIT_CONFIG_FILE_BYTES (1024 * 1024)

static const float clip_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
static const float clip_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

/* The member @key, or NULL when absent or null. */
static JsonNode *
get_member (JsonObject *object, const char *key)
{
  if (object == NULL)
    return NULL;
  JsonNode *node = json_object_get_member (object, key);
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return NULL;
  return node;
}

/* An integer in [@min, @limit]; @limit exceeded is TOO_LARGE (also for huge
 * values json-glib hands over as doubles). */
static gboolean
get_int (JsonObject *object, const char *file, const char *section, const char *key, int def,
    int min, int limit, int *out, GError **error)
{
  JsonNode *node = get_member (object, key);
  const char *dot = section ? "." : "";
  section = section ? section : "";
  if (node == NULL) {
    *out = def;
    return TRUE;
  }
  /* Integers beyond 18 digits reach us as doubles (cnclip_json_parse). */
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_DOUBLE) {
    double d = json_node_get_double (node);
    if (d > limit && d == floor (d)) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
          "%s: %s%s%s is %g, more than the limit %d", file, section, dot, key, d, limit);
      return FALSE;
    }
  }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG, "%s: %s%s%s is not an integer", file,
        section, dot, key);
    return FALSE;
  }
  gint64 v = json_node_get_int (node);
  if (v < min) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "%s: %s%s%s is %" G_GINT64_FORMAT ", it must be at least %d", file, section, dot, key,
        v, min);
    return FALSE;
  }
  if (v > limit) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "%s: %s%s%s is %" G_GINT64_FORMAT ", more than the limit %d", file, section, dot, key,
        v, limit);
    return FALSE;
  }
  *out = (int) v;
  return TRUE;
}

/* A JSON number (integer or not) as double; FALSE when it is another type. */
static gboolean
node_get_number (JsonNode *node, double *out)
{
  if (!JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  GType type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64)
    *out = (double) json_node_get_int (node);
  else if (type == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else
    return FALSE;
  return TRUE;
}

static gboolean
get_eps (JsonObject *object, const char *section, float def, float *out, GError **error)
{
  JsonNode *node = get_member (object, "layer_norm_eps");
  double v;
  if (node == NULL) {
    *out = def;
    return TRUE;
  }
  if (!node_get_number (node, &v) || !isfinite (v) || v <= 0.0 || v >= 1.0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "config.json: %s.layer_norm_eps must be a number in (0, 1)", section);
    return FALSE;
  }
  *out = (float) v;
  return TRUE;
}

static gboolean
get_act (JsonObject *object, const char *section, CnclipActivation def, CnclipActivation *out,
    GError **error)
{
  JsonNode *node = get_member (object, "hidden_act");
  if (node == NULL) {
    *out = def;
    return TRUE;
  }
  const char *name = NULL;
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    name = json_node_get_string (node);
  /* Hugging Face "gelu" is the exact erf form; approximations such as
   * gelu_new change the embeddings by ~6e-4 and are refused. */
  if (name && strcmp (name, "gelu") == 0) {
    *out = CNCLIP_ACT_GELU;
  } else if (name && strcmp (name, "quick_gelu") == 0) {
    *out = CNCLIP_ACT_QUICK_GELU;
  } else {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "config.json: %s.hidden_act: unsupported activation %s%s%s (gelu, quick_gelu)", section,
        name ? "'" : "", name ? name : "(not a string)", name ? "'" : "");
    return FALSE;
  }
  return TRUE;
}

/* An object member that may be absent/null (-> NULL, defaults apply). */
static gboolean
get_section (JsonObject *root, const char *file, const char *key, JsonObject **out,
    GError **error)
{
  JsonNode *node = get_member (root, key);
  *out = NULL;
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG, "%s: %s is not an object", file, key);
    return FALSE;
  }
  *out = json_node_get_object (node);
  return TRUE;
}

/* @key, overridden member by member by @key_dict when present: older
 * transformers versions wrote text_config_dict / vision_config_dict, and
 * Hugging Face lets them win. *@merged owns what was built (unref it). */
static gboolean
get_tower_section (JsonObject *root, const char *key, const char *key_dict, JsonObject **out,
    JsonObject **merged, GError **error)
{
  JsonObject *main = NULL, *dict = NULL;
  *merged = NULL;
  if (!get_section (root, "config.json", key, &main, error)
      || !get_section (root, "config.json", key_dict, &dict, error))
    return FALSE;
  if (dict == NULL) {
    *out = main;
    return TRUE;
  }
  *merged = json_object_new ();
  JsonObject *parts[2] = { main, dict };
  for (int i = 0; i < 2; i++) {
    GList *members = parts[i] ? json_object_get_members (parts[i]) : NULL;
    for (GList *l = members; l; l = l->next)
      json_object_set_member (*merged, l->data,
          json_node_copy (json_object_get_member (parts[i], l->data)));
    g_list_free (members);
  }
  *out = *merged;
  return TRUE;
}

static gboolean
check_heads (const char *section, int width, int heads, GError **error)
{
  if (width % heads != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "config.json: %s.num_attention_heads %d does not divide hidden_size %d", section, heads,
        width);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_vision (JsonObject *v, CnclipVisionConfig *vc, GError **error)
{
  const char *f = "config.json", *s = "vision_config";
  if (!get_int (v, f, s, "hidden_size", 768, 1, LIMIT_HIDDEN, &vc->hidden_size, error)
      || !get_int (v, f, s, "intermediate_size", 3072, 1, LIMIT_INTERMEDIATE,
          &vc->intermediate_size, error)
      || !get_int (v, f, s, "num_hidden_layers", 12, 1, LIMIT_LAYERS, &vc->num_layers, error)
      || !get_int (v, f, s, "num_attention_heads", 12, 1, LIMIT_HEADS, &vc->num_heads, error)
      || !get_int (v, f, s, "image_size", 224, 1, LIMIT_IMAGE, &vc->image_size, error)
      || !get_int (v, f, s, "patch_size", 32, 1, LIMIT_IMAGE, &vc->patch_size, error)
      || !get_int (v, f, s, "num_channels", 3, 1, LIMIT_HIDDEN, &vc->num_channels, error)
      || !get_eps (v, s, 1e-5f, &vc->layer_norm_eps, error)
      || !get_act (v, s, CNCLIP_ACT_QUICK_GELU, &vc->act, error))
    return FALSE;
  if (!check_heads (s, vc->hidden_size, vc->num_heads, error))
    return FALSE;
  if (vc->num_channels != 3) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "config.json: vision_config.num_channels is %d; only RGB (3) is supported",
        vc->num_channels);
    return FALSE;
  }
  if (vc->image_size % vc->patch_size != 0) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "config.json: vision_config.image_size %d is not a multiple of patch_size %d",
        vc->image_size, vc->patch_size);
    return FALSE;
  }
  gint64 side = vc->image_size / vc->patch_size;
  if (side * side + 1 > LIMIT_VISION_TOKENS) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "config.json: image_size %d / patch_size %d gives %" G_GINT64_FORMAT
        " vision tokens, more than the limit %d", vc->image_size, vc->patch_size,
        side * side + 1, LIMIT_VISION_TOKENS);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_text (JsonObject *t, CnclipTextConfig *tc, GError **error)
{
  const char *f = "config.json", *s = "text_config";
  if (!get_int (t, f, s, "vocab_size", 30522, 1, LIMIT_VOCAB, &tc->vocab_size, error)
      || !get_int (t, f, s, "hidden_size", 768, 1, LIMIT_HIDDEN, &tc->hidden_size, error)
      || !get_int (t, f, s, "num_hidden_layers", 12, 1, LIMIT_LAYERS, &tc->num_layers, error)
      || !get_int (t, f, s, "num_attention_heads", 12, 1, LIMIT_HEADS, &tc->num_heads, error)
      || !get_int (t, f, s, "intermediate_size", 3072, 1, LIMIT_INTERMEDIATE,
          &tc->intermediate_size, error)
      || !get_int (t, f, s, "max_position_embeddings", 512, 2, LIMIT_POSITIONS,
          &tc->max_position_embeddings, error)
      || !get_int (t, f, s, "type_vocab_size", 2, 1, LIMIT_TYPE_VOCAB, &tc->type_vocab_size,
          error)
      || !get_int (t, f, s, "pad_token_id", 0, 0, LIMIT_VOCAB, &tc->pad_token_id, error)
      || !get_eps (t, s, 1e-12f, &tc->layer_norm_eps, error)
      || !get_act (t, s, CNCLIP_ACT_GELU, &tc->act, error))
    return FALSE;
  if (!check_heads (s, tc->hidden_size, tc->num_heads, error))
    return FALSE;
  if (tc->pad_token_id >= tc->vocab_size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "config.json: text_config.pad_token_id %d is not below vocab_size %d",
        tc->pad_token_id, tc->vocab_size);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_triple (JsonObject *object, const char *key, gboolean positive, const float *def,
    float *out, GError **error)
{
  JsonNode *node = get_member (object, key);
  if (node == NULL) {
    memcpy (out, def, 3 * sizeof (float));
    return TRUE;
  }
  JsonArray *array = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  if (array == NULL || json_array_get_length (array) != 3)
    goto bad;
  for (guint c = 0; c < 3; c++) {
    double v;
    if (!node_get_number (json_array_get_element (array, c), &v) || !isfinite (v)
        || fabs (v) > 1e6 || (positive && !(v > 0.0)))
      goto bad;
    out[c] = (float) v;
    if (positive && !(out[c] > 0.0f))
      goto bad;
  }
  return TRUE;

bad:
  g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
      "preprocessor_config.json: %s must be 3 %snumbers", key, positive ? "positive " : "");
  return FALSE;
}

static gboolean
parse_preprocessor (JsonObject *p, CnclipConfig *config, GError **error)
{
  const char *f = "preprocessor_config.json";
  if (!parse_triple (p, "image_mean", FALSE, clip_mean, config->image_mean, error)
      || !parse_triple (p, "image_std", TRUE, clip_std, config->image_std, error))
    return FALSE;

  /* size: {"height", "width"} (current), {"shortest_edge"} or a bare int
   * (older feature extractors). */
  int height = config->vision.image_size, width = height;
  JsonNode *size = get_member (p, "size");
  if (size && JSON_NODE_HOLDS_OBJECT (size)) {
    JsonObject *so = json_node_get_object (size);
    if (get_member (so, "shortest_edge")) {
      if (!get_int (so, f, "size", "shortest_edge", 0, 1, LIMIT_IMAGE, &height, error))
        return FALSE;
      width = height;
    } else if (!get_member (so, "height") || !get_member (so, "width")) {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
          "%s: size needs height and width (or shortest_edge)", f);
      return FALSE;
    } else if (!get_int (so, f, "size", "height", 0, 1, LIMIT_IMAGE, &height, error)
        || !get_int (so, f, "size", "width", 0, 1, LIMIT_IMAGE, &width, error)) {
      return FALSE;
    }
  } else if (size) {
    if (!get_int (p, f, NULL, "size", 0, 1, LIMIT_IMAGE, &height, error))
      return FALSE;
    width = height;
  }
  if (height != config->vision.image_size || width != config->vision.image_size) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG,
        "%s: size %dx%d differs from config.json vision_config.image_size %d", f, width, height,
        config->vision.image_size);
    return FALSE;
  }
  config->image_height = height;
  config->image_width = width;
  return TRUE;
}

static void
parse_tokenizer (JsonObject *t, CnclipConfig *config)
{
  int max_pos = config->text.max_position_embeddings;
  config->context_length = MIN (CNCLIP_DEFAULT_CONTEXT_LENGTH, max_pos);
  JsonNode *node = get_member (t, "model_max_length");
  if (node && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64) {
    gint64 v = json_node_get_int (node);
    if (v >= 2 && v <= max_pos)
      config->context_length = (int) v;
  }
}

/* Parses one document into an object; @json NULL gives NULL (absent file). */
static gboolean
parse_object (const char *json, gssize len, const char *file, JsonNode **root, GError **error)
{
  *root = NULL;
  if (json == NULL)
    return TRUE;
  gsize length = len < 0 ? strlen (json) : (gsize) len;
  *root = cnclip_json_parse (json, length, file, CNCLIP_ERROR_CONFIG, error);
  if (*root == NULL)
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (*root)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG, "%s: not a JSON object", file);
    g_clear_pointer (root, json_node_unref);
    return FALSE;
  }
  return TRUE;
}

gboolean
cnclip_config_parse (const char *config_json, gssize config_len, const char *preprocessor_json,
    gssize preprocessor_len, const char *tokenizer_json, gssize tokenizer_len,
    CnclipConfig *config, GError **error)
{
  g_return_val_if_fail (config_json != NULL, FALSE);
  g_return_val_if_fail (config != NULL, FALSE);

  JsonNode *croot = NULL, *proot = NULL, *troot = NULL;
  JsonObject *vision = NULL, *text = NULL, *vision_merged = NULL, *text_merged = NULL;
  CnclipConfig c = { 0 };
  gboolean ok = FALSE;

  if (!parse_object (config_json, config_len, "config.json", &croot, error)
      || !parse_object (preprocessor_json, preprocessor_len, "preprocessor_config.json", &proot,
          error)
      || !parse_object (tokenizer_json, tokenizer_len, "tokenizer_config.json", &troot, error))
    goto out;

  JsonObject *top = json_node_get_object (croot);
  if (!get_tower_section (top, "vision_config", "vision_config_dict", &vision, &vision_merged,
          error)
      || !get_tower_section (top, "text_config", "text_config_dict", &text, &text_merged, error)
      || !get_int (top, "config.json", NULL, "projection_dim", 512, 1, LIMIT_PROJECTION,
          &c.projection_dim, error)
      || !parse_vision (vision, &c.vision, error)
      || !parse_text (text, &c.text, error)
      || !parse_preprocessor (proot ? json_node_get_object (proot) : NULL, &c, error))
    goto out;
  parse_tokenizer (troot ? json_node_get_object (troot) : NULL, &c);

  *config = c;
  ok = TRUE;

out:
  g_clear_pointer (&vision_merged, json_object_unref);
  g_clear_pointer (&text_merged, json_object_unref);
  g_clear_pointer (&croot, json_node_unref);
  g_clear_pointer (&proot, json_node_unref);
  g_clear_pointer (&troot, json_node_unref);
  return ok;
}

/* Reads @dir/@name; an absent optional file gives *contents NULL. */
static gboolean
read_config_file (const char *dir, const char *name, gboolean required, char **contents,
    gsize *length, GError **error)
{
  char *path = g_build_filename (dir, name, NULL);
  struct stat st;
  gboolean ok = FALSE;
  GError *local = NULL;

  *contents = NULL;
  *length = 0;
  if (stat (path, &st) != 0) {
    if (!required) {
      ok = TRUE;
    } else {
      g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: %s", path, g_strerror (errno));
    }
    goto out;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s: not a regular file", path);
    goto out;
  }
  if (st.st_size > LIMIT_CONFIG_FILE_BYTES) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE,
        "%s: %" G_GINT64_FORMAT " bytes is too large for a config file", path,
        (gint64) st.st_size);
    goto out;
  }
  if (!g_file_get_contents (path, contents, length, &local)) {
    g_set_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO, "%s", local->message);
    g_error_free (local);
    goto out;
  }
  ok = TRUE;

out:
  g_free (path);
  return ok;
}

gboolean
cnclip_config_load (const char *model_dir, CnclipConfig *config, GError **error)
{
  g_return_val_if_fail (model_dir != NULL, FALSE);
  g_return_val_if_fail (config != NULL, FALSE);

  char *cj = NULL, *pj = NULL, *tj = NULL;
  gsize cl = 0, pl = 0, tl = 0;
  gboolean ok = FALSE;

  if (!read_config_file (model_dir, "config.json", TRUE, &cj, &cl, error)
      || !read_config_file (model_dir, "preprocessor_config.json", FALSE, &pj, &pl, error)
      || !read_config_file (model_dir, "tokenizer_config.json", FALSE, &tj, &tl, error))
    goto out;
  if (!cnclip_config_parse (cj, (gssize) cl, pj, (gssize) pl, tj, (gssize) tl, config, error)) {
    /* Messages start with the file name: make it a path. */
    gsize n = strlen (model_dir);
    g_prefix_error (error, "%s%s", model_dir,
        n == 0 || G_IS_DIR_SEPARATOR (model_dir[n - 1]) ? "" : G_DIR_SEPARATOR_S);
    goto out;
  }
  ok = TRUE;

out:
  g_free (cj);
  g_free (pj);
  g_free (tj);
  return ok;
}
