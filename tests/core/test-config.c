/* test-config.c: config.json / preprocessor_config.json /
 * tokenizer_config.json parsing (config.c). */
#include "config.h"

#include <string.h>
#include <glib/gstdio.h>

#include "test-util.h"
#include "model.h"

static gboolean
parse (const char *config, const char *pre, const char *tok, CnclipConfig *out, GError **error)
{
  return cnclip_config_parse (config, -1, pre, -1, tok, -1, out, error);
}

/* Test that the fixture directory gives every value of FIXTURES.md 1.1. */
static void
test_fixture (void)
{
  char *dir = test_data_path (TEST_TINY_MODEL);
  CnclipConfig c;
  GError *error = NULL;
  g_assert_true (cnclip_config_load (dir, &c, &error));
  g_assert_no_error (error);

  g_assert_cmpint (c.projection_dim, ==, 64);
  g_assert_cmpint (c.vision.hidden_size, ==, 128);
  g_assert_cmpint (c.vision.num_heads, ==, 2);
  g_assert_cmpint (c.vision.num_layers, ==, 2);
  g_assert_cmpint (c.vision.intermediate_size, ==, 512);
  g_assert_cmpint (c.vision.patch_size, ==, 16);
  g_assert_cmpint (c.vision.image_size, ==, 224);
  g_assert_cmpint (c.vision.num_channels, ==, 3);
  g_assert_cmpint (c.vision.act, ==, CNCLIP_ACT_QUICK_GELU);
  g_assert_cmpfloat (c.vision.layer_norm_eps, ==, 1e-5f);
  g_assert_cmpint (c.text.vocab_size, ==, 21128);
  g_assert_cmpint (c.text.hidden_size, ==, 128);
  g_assert_cmpint (c.text.num_heads, ==, 2);
  g_assert_cmpint (c.text.num_layers, ==, 2);
  g_assert_cmpint (c.text.intermediate_size, ==, 512);
  g_assert_cmpint (c.text.max_position_embeddings, ==, 512);
  g_assert_cmpint (c.text.type_vocab_size, ==, 2);
  g_assert_cmpint (c.text.act, ==, CNCLIP_ACT_GELU);
  g_assert_cmpfloat (c.text.layer_norm_eps, ==, 1e-12f);
  g_assert_cmpint (c.text.pad_token_id, ==, 0);
  static const float mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
  static const float std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
  for (int i = 0; i < 3; i++) {
    g_assert_cmpfloat (c.image_mean[i], ==, mean[i]);
    g_assert_cmpfloat (c.image_std[i], ==, std[i]);
  }
  g_assert_cmpint (c.image_height, ==, 224);
  g_assert_cmpint (c.image_width, ==, 224);
  g_assert_cmpint (c.context_length, ==, 52);
  g_free (dir);
}

/* Test that a config with only model_type gets the Hugging Face defaults,
 * including vision patch_size 32 and text vocab_size 30522. */
static void
test_defaults (void)
{
  CnclipConfig c;
  GError *error = NULL;
  g_assert_true (parse ("{\"model_type\": \"chinese_clip\"}", NULL, NULL, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.projection_dim, ==, 512);
  g_assert_cmpint (c.vision.hidden_size, ==, 768);
  g_assert_cmpint (c.vision.intermediate_size, ==, 3072);
  g_assert_cmpint (c.vision.num_layers, ==, 12);
  g_assert_cmpint (c.vision.num_heads, ==, 12);
  g_assert_cmpint (c.vision.image_size, ==, 224);
  g_assert_cmpint (c.vision.patch_size, ==, 32);
  g_assert_cmpint (c.vision.num_channels, ==, 3);
  g_assert_cmpint (c.vision.act, ==, CNCLIP_ACT_QUICK_GELU);
  g_assert_cmpfloat (c.vision.layer_norm_eps, ==, 1e-5f);
  g_assert_cmpint (c.text.vocab_size, ==, 30522);
  g_assert_cmpint (c.text.hidden_size, ==, 768);
  g_assert_cmpint (c.text.num_layers, ==, 12);
  g_assert_cmpint (c.text.num_heads, ==, 12);
  g_assert_cmpint (c.text.intermediate_size, ==, 3072);
  g_assert_cmpint (c.text.max_position_embeddings, ==, 512);
  g_assert_cmpint (c.text.type_vocab_size, ==, 2);
  g_assert_cmpint (c.text.act, ==, CNCLIP_ACT_GELU);
  g_assert_cmpfloat (c.text.layer_norm_eps, ==, 1e-12f);
  g_assert_cmpint (c.text.pad_token_id, ==, 0);
  g_assert_cmpfloat (c.image_mean[0], ==, 0.48145466f);
  g_assert_cmpfloat (c.image_std[2], ==, 0.27577711f);
  g_assert_cmpint (c.image_height, ==, 224);
  g_assert_cmpint (c.context_length, ==, 52);

  /* null values and empty sections count as missing */
  g_assert_true (parse ("{\"projection_dim\": null, \"vision_config\": {\"patch_size\": null},"
          " \"text_config\": null}", NULL, NULL, &c, &error));
  g_assert_cmpint (c.projection_dim, ==, 512);
  g_assert_cmpint (c.vision.patch_size, ==, 32);
  g_assert_cmpint (c.text.vocab_size, ==, 30522);
}

/* Test that text_config_dict / vision_config_dict (older transformers)
 * override text_config / vision_config key by key, as Hugging Face does. */
static void
test_config_dicts (void)
{
  CnclipConfig c;
  GError *error = NULL;
  g_assert_true (parse ("{\"vision_config_dict\": {\"patch_size\": 16},"
          " \"text_config\": {\"vocab_size\": 100, \"hidden_size\": 256, \"num_attention_heads\": 4},"
          " \"text_config_dict\": {\"vocab_size\": 21128, \"num_hidden_layers\": 6}}",
          NULL, NULL, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.vision.patch_size, ==, 16);
  g_assert_cmpint (c.vision.hidden_size, ==, 768);
  g_assert_cmpint (c.text.vocab_size, ==, 21128);
  g_assert_cmpint (c.text.hidden_size, ==, 256);
  g_assert_cmpint (c.text.num_heads, ==, 4);
  g_assert_cmpint (c.text.num_layers, ==, 6);
  /* the merged values are validated like the others */
  g_assert_false (parse ("{\"text_config_dict\": {\"num_attention_heads\": 5}}", NULL, NULL, &c,
          &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG);
  g_assert_false (parse ("{\"vision_config_dict\": 3}", NULL, NULL, &c, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG);
}

typedef struct
{
  const char *what;
  const char *config;
  const char *preprocessor;
  const char *tokenizer;
  int code;
} BadCase;

#define V(x) "{\"vision_config\": {" x "}}"
#define T(x) "{\"text_config\": {" x "}}"

static const BadCase bad_cases[] = {
  { "not JSON", "{hidden_size: 1", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "array", "[1, 2]", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "empty", "", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "duplicate key", "{\"projection_dim\": 64, \"projection_dim\": 512}", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "string where int", V ("\"hidden_size\": \"768\""), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "bool where int", T ("\"num_hidden_layers\": true"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "float where int", V ("\"image_size\": 224.0"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "fraction where int", "{\"projection_dim\": 511.5}", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "zero size", V ("\"hidden_size\": 0"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "negative size", T ("\"intermediate_size\": -3072"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "zero layers", T ("\"num_hidden_layers\": 0"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "zero projection", "{\"projection_dim\": 0}", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "zero heads", V ("\"num_attention_heads\": 0"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "vision heads do not divide", V ("\"num_attention_heads\": 7"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "text heads do not divide", T ("\"hidden_size\": 100, \"num_attention_heads\": 12"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "unknown vision act", V ("\"hidden_act\": \"gelu_new\""), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "unknown text act", T ("\"hidden_act\": \"relu\""), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "act not a string", T ("\"hidden_act\": 1"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "image not divisible by patch", V ("\"image_size\": 224, \"patch_size\": 15"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "four channels", V ("\"num_channels\": 4"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "zero eps", V ("\"layer_norm_eps\": 0"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "negative eps", T ("\"layer_norm_eps\": -1e-12"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "string eps", T ("\"layer_norm_eps\": \"1e-12\""), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "vision_config not an object", "{\"vision_config\": [1]}", NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "pad id beyond vocab", T ("\"vocab_size\": 100, \"pad_token_id\": 100"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "one position", T ("\"max_position_embeddings\": 1"), NULL, NULL, CNCLIP_ERROR_CONFIG },
  { "mean of two", "{}", "{\"image_mean\": [0.5, 0.5]}", NULL, CNCLIP_ERROR_CONFIG },
  { "mean not numbers", "{}", "{\"image_mean\": [\"a\", 0.5, 0.5]}", NULL, CNCLIP_ERROR_CONFIG },
  { "mean not an array", "{}", "{\"image_mean\": 0.5}", NULL, CNCLIP_ERROR_CONFIG },
  { "zero std", "{}", "{\"image_std\": [0.2, 0, 0.2]}", NULL, CNCLIP_ERROR_CONFIG },
  { "negative std", "{}", "{\"image_std\": [0.2, 0.2, -0.2]}", NULL, CNCLIP_ERROR_CONFIG },
  { "tiny std", "{}", "{\"image_std\": [0.2, 0.2, 1e-300]}", NULL, CNCLIP_ERROR_CONFIG },
  { "size differs", "{}", "{\"size\": {\"height\": 336, \"width\": 336}}", NULL, CNCLIP_ERROR_CONFIG },
  { "size not square", "{}", "{\"size\": {\"height\": 224, \"width\": 256}}", NULL, CNCLIP_ERROR_CONFIG },
  { "size without width", "{}", "{\"size\": {\"height\": 224}}", NULL, CNCLIP_ERROR_CONFIG },
  { "size a string", "{}", "{\"size\": \"224\"}", NULL, CNCLIP_ERROR_CONFIG },
  { "preprocessor not JSON", "{}", "{", NULL, CNCLIP_ERROR_CONFIG },
  { "preprocessor an array", "{}", "[]", NULL, CNCLIP_ERROR_CONFIG },
  { "tokenizer config not JSON", "{}", NULL, "{\"model_max_length\": }", CNCLIP_ERROR_CONFIG },
  { "absurd hidden", V ("\"hidden_size\": 65537"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd layers", T ("\"num_hidden_layers\": 1001"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd vocab", T ("\"vocab_size\": 10000001"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd intermediate", T ("\"intermediate_size\": 262145"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd image", V ("\"image_size\": 8192"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd positions", T ("\"max_position_embeddings\": 1000000"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd projection", "{\"projection_dim\": 2147483647}", NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "absurd token count", V ("\"image_size\": 2048, \"patch_size\": 16"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  /* json-glib alone would wrap 2^64 + 768 around to 768 */
  { "beyond 64 bits", V ("\"hidden_size\": 18446744073709552384"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
  { "int beyond gint32", T ("\"vocab_size\": 4294967296"), NULL, NULL, CNCLIP_ERROR_TOO_LARGE },
};

/* Test that each invalid value is refused with the right code before any
 * size is used. */
static void
test_bad (gconstpointer data)
{
  const BadCase *b = data;
  CnclipConfig c;
  memset (&c, 0x5a, sizeof (c));
  GError *error = NULL;
  g_assert_false (parse (b->config, b->preprocessor, b->tokenizer, &c, &error));
  g_assert_nonnull (error);
  /* each message names its file */
  g_assert_true (strstr (error->message, "config.json") != NULL);
  test_assert_error (error, CNCLIP_ERROR, b->code);
  /* nothing written on failure */
  g_assert_cmpint (c.projection_dim, ==, 0x5a5a5a5a);
}

/* Test that preprocessor mean/std and every accepted size form are read. */
static void
test_preprocessor (void)
{
  CnclipConfig c;
  GError *error = NULL;
  g_assert_true (parse ("{\"vision_config\": {\"image_size\": 336, \"patch_size\": 14}}",
          "{\"image_mean\": [0.5, 0.25, 1], \"image_std\": [0.125, 2, 0.3],"
          " \"size\": {\"shortest_edge\": 336}}", NULL, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (c.image_mean[0], ==, 0.5f);
  g_assert_cmpfloat (c.image_mean[1], ==, 0.25f);
  g_assert_cmpfloat (c.image_mean[2], ==, 1.0f);
  g_assert_cmpfloat (c.image_std[0], ==, 0.125f);
  g_assert_cmpfloat (c.image_std[1], ==, 2.0f);
  g_assert_cmpfloat (c.image_std[2], ==, 0.3f);
  g_assert_cmpint (c.image_height, ==, 336);
  g_assert_cmpint (c.image_width, ==, 336);

  g_assert_true (parse ("{}", "{\"size\": 224, \"image_mean\": null}", NULL, &c, &error));
  g_assert_cmpint (c.image_width, ==, 224);
  g_assert_cmpfloat (c.image_mean[1], ==, 0.4578275f);
  g_assert_true (parse ("{}", "{\"size\": {\"height\": 224, \"width\": 224}}", NULL, &c, &error));
  g_assert_cmpint (c.image_height, ==, 224);
  g_assert_no_error (error);
}

/* Test the context length rule: model_max_length when an integer in
 * [2, max_position_embeddings], otherwise 52 (or max_position_embeddings
 * when smaller). */
static void
test_context_length (void)
{
  static const struct
  {
    const char *config;
    const char *tokenizer;
    int expected;
  } cases[] = {
    { "{}", NULL, 52 },
    { "{}", "{}", 52 },
    { "{}", "{\"model_max_length\": 52}", 52 },
    { "{}", "{\"model_max_length\": 77}", 77 },
    { "{}", "{\"model_max_length\": 512}", 512 },
    { "{}", "{\"model_max_length\": 513}", 52 },
    { "{}", "{\"model_max_length\": 1}", 52 },
    { "{}", "{\"model_max_length\": -5}", 52 },
    { "{}", "{\"model_max_length\": \"77\"}", 52 },
    { "{}", "{\"model_max_length\": 64.0}", 52 },
    /* what transformers writes for "no limit" (int(1e30)) */
    { "{}", "{\"model_max_length\": 1000000000000000019884624838656}", 52 },
    { "{\"text_config\": {\"max_position_embeddings\": 32}}", NULL, 32 },
    { "{\"text_config\": {\"max_position_embeddings\": 32}}", "{\"model_max_length\": 52}", 32 },
    { "{\"text_config\": {\"max_position_embeddings\": 32}}", "{\"model_max_length\": 16}", 16 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    CnclipConfig c;
    GError *error = NULL;
    g_assert_true (parse (cases[i].config, NULL, cases[i].tokenizer, &c, &error));
    g_assert_no_error (error);
    if (c.context_length != cases[i].expected)
      g_error ("case %zu: context length %d, expected %d", i, c.context_length, cases[i].expected);
  }
}

/* Test that loading from a directory names the file: a missing directory or
 * config.json is an I/O error, optional files may be absent, an oversized
 * file is refused, and a parse error carries the directory in its message. */
static void
test_load_errors (void)
{
  CnclipConfig c;
  GError *error = NULL;
  char *dir = test_make_temp_dir ();
  char *missing = g_build_filename (dir, "nope", NULL);
  g_assert_false (cnclip_config_load (missing, &c, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  g_assert_false (cnclip_config_load (dir, &c, &error));
  g_assert_nonnull (strstr (error->message, "config.json"));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);

  /* config.json only: the optional files are absent */
  char *path = g_build_filename (dir, "config.json", NULL);
  g_assert_true (g_file_set_contents (path, "{\"projection_dim\": 256}", -1, NULL));
  g_assert_true (cnclip_config_load (dir, &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.projection_dim, ==, 256);
  g_assert_cmpint (c.context_length, ==, 52);

  /* a directory where a file should be */
  char *pre = g_build_filename (dir, "preprocessor_config.json", NULL);
  g_assert_cmpint (g_mkdir (pre, 0700), ==, 0);
  g_assert_false (cnclip_config_load (dir, &c, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_IO);
  g_rmdir (pre);

  /* a config file beyond 1 MB is refused unread */
  char *big = g_strnfill (1024 * 1024 + 1, ' ');
  big[0] = '{';
  big[1024 * 1024] = '}';
  g_assert_true (g_file_set_contents (path, big, -1, NULL));
  g_assert_false (cnclip_config_load (dir, &c, &error));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_TOO_LARGE);
  g_free (big);

  g_assert_true (g_file_set_contents (path, "{\"projection_dim\": -1}", -1, NULL));
  g_assert_false (cnclip_config_load (dir, &c, &error));
  g_assert_nonnull (strstr (error->message, dir));
  g_assert_nonnull (strstr (error->message, "projection_dim"));
  test_assert_error (error, CNCLIP_ERROR, CNCLIP_ERROR_CONFIG);

  g_free (pre);
  g_free (path);
  g_free (missing);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/fixture", test_fixture);
  g_test_add_func ("/config/defaults", test_defaults);
  g_test_add_func ("/config/config-dicts", test_config_dicts);
  g_test_add_func ("/config/preprocessor", test_preprocessor);
  g_test_add_func ("/config/context-length", test_context_length);
  g_test_add_func ("/config/load-errors", test_load_errors);
  for (gsize i = 0; i < G_N_ELEMENTS (bad_cases); i++) {
    char *name = g_strdup_printf ("/config/bad/%s", bad_cases[i].what);
    for (char *p = name; *p; p++) {
      if (*p == ' ')
        *p = '-';
    }
    g_test_add_data_func (name, &bad_cases[i], test_bad);
    g_free (name);
  }
  return g_test_run ();
}
