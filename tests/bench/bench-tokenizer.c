/* bench-tokenizer.c: microseconds per text for cnclip_tokenizer_encode().
 *
 * Usage: bench-tokenizer [VOCAB_TXT]   (default: tests/data/cnclip-tiny/vocab.txt)
 *
 * Prints, per text, the best and the median of 7 rounds of the time of one
 * encode call (context length 52), each round long enough (~0.1 s) to
 * average out the timer. The target: a 1,000-character text well under a
 * millisecond.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"

#define ROUNDS 7

typedef struct
{
  const char *name;
  char *text;
} BenchText;

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Repeats @unit until the text has @n_chars code points. */
static char *
repeat_to (const char *unit, glong n_chars)
{
  GString *s = g_string_new (NULL);
  glong unit_chars = g_utf8_strlen (unit, -1);
  glong have = 0;
  while (have + unit_chars <= n_chars) {
    g_string_append (s, unit);
    have += unit_chars;
  }
  const char *p = unit;
  for (; have < n_chars; have++) {
    const char *next = g_utf8_next_char (p);
    g_string_append_len (s, p, next - p);
    p = next;
  }
  g_assert_cmpint (g_utf8_strlen (s->str, -1), ==, n_chars);
  return g_string_free (s, FALSE);
}

static double
time_text (const CnclipTokenizer *tok, const char *text, double *median)
{
  gint32 row[CNCLIP_DEFAULT_CONTEXT_LENGTH];
  double us[ROUNDS];
  gint64 iters = 1;

  /* Calibrate: about 0.1 s per round. */
  for (;;) {
    gint64 t0 = g_get_monotonic_time ();
    for (gint64 i = 0; i < iters; i++)
      cnclip_tokenizer_encode (tok, text, -1, CNCLIP_DEFAULT_CONTEXT_LENGTH, row, NULL, NULL);
    gint64 dt = g_get_monotonic_time () - t0;
    if (dt > 100000 || iters > (G_GINT64_CONSTANT (1) << 30))
      break;
    iters *= dt > 1000 ? MAX (2, 100000 / dt + 1) : 10;
  }
  for (int r = 0; r < ROUNDS; r++) {
    gint64 t0 = g_get_monotonic_time ();
    for (gint64 i = 0; i < iters; i++)
      cnclip_tokenizer_encode (tok, text, -1, CNCLIP_DEFAULT_CONTEXT_LENGTH, row, NULL, NULL);
    us[r] = (double) (g_get_monotonic_time () - t0) / (double) iters;
  }
  qsort (us, ROUNDS, sizeof (double), compare_double);
  *median = us[ROUNDS / 2];
  return us[0];
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  char *path = argc > 1 ? g_strdup (argv[1]) : test_data_path ("cnclip-tiny/vocab.txt");

  gint64 t0 = g_get_monotonic_time ();
  CnclipTokenizer *tok = cnclip_tokenizer_load (path, &error);
  gint64 load_us = g_get_monotonic_time () - t0;
  if (tok == NULL) {
    fprintf (stderr, "bench-tokenizer: %s\n", error->message);
    return 1;
  }

  BenchText texts[] = {
    { "short: 一只猫", g_strdup ("一只猫") },
    { "short: 一张狗的照片", g_strdup ("一张狗的照片") },
    { "short: 下雨的街道上有一辆红色的汽车", g_strdup ("下雨的街道上有一辆红色的汽车") },
    { "short: a photo of a cat", g_strdup ("a photo of a cat") },
    { "short: iPhone 15 Pro Max 手机壳", g_strdup ("iPhone 15 Pro Max 手机壳") },
    { "1000 chars Chinese prose", repeat_to ("今天天气很好，我们去公园散步吧。远处的山峰被白雪覆盖，"
            "近处的柳树随风摇摆。", 1000) },
    { "1000 chars English prose", repeat_to ("The quick brown fox jumps over the lazy dog; "
            "tokenization of internationalization is unaffable. ", 1000) },
    { "1000 chars mixed scripts", repeat_to ("我在Starbucks喝coffee，价格：$99.99（约￥700）。"
            "Café ΟΔΟΣ İstanbul 東京Tokyo도쿄 🎨 ", 1000) },
    { "1000 chars one long word", repeat_to ("a", 1000) },
  };

  printf ("vocab: %s (%d tokens), load %.2f ms\n", path, cnclip_tokenizer_get_vocab_size (tok),
      load_us / 1000.0);
  printf ("%7s %7s %10s %10s  %s\n", "chars", "tokens", "best us", "median us", "text");
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++) {
    double median;
    int n_tokens = cnclip_tokenizer_tokenize (tok, texts[i].text, -1, NULL, 0, NULL);
    double best = time_text (tok, texts[i].text, &median);
    printf ("%7ld %7d %10.2f %10.2f  %s\n", g_utf8_strlen (texts[i].text, -1), n_tokens, best,
        median, texts[i].name);
    g_free (texts[i].text);
  }

  cnclip_tokenizer_free (tok);
  g_free (path);
  return 0;
}
