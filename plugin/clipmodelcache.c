/* clipmodelcache.c: see clipmodelcache.h. */
#include "clipmodelcache.h"

typedef struct
{
  char *key;
  CnclipModel *model; /* NULL while loading or after a failure */
  GError *error;      /* set when the load failed */
  gboolean loading;
  guint users; /* acquirers, including those waiting for the load */
} CacheEntry;

static GMutex cache_lock;
static GCond cache_cond;
static GHashTable *cache_by_key; /* key -> CacheEntry */

static char *
make_key (const char *model_dir, const CnclipModelParams *params)
{
  char *dir = g_canonicalize_filename (model_dir, NULL);
  char *weights
      = params->weights_file ? g_canonicalize_filename (params->weights_file, dir) : g_strdup ("");
  /* '\n' cannot sensibly occur in these paths, so it separates the fields. */
  char *key = g_strdup_printf ("%s\n%s\n%d\n%d", dir, weights, (int)params->backend,
                               (int)params->precision);

  g_free (dir);
  g_free (weights);
  return key;
}

/* called with cache_lock */
static void
entry_drop_user (CacheEntry *entry)
{
  g_assert (entry->users > 0);
  if (--entry->users > 0 || entry->loading)
    return;
  g_hash_table_remove (cache_by_key, entry->key);
  if (entry->model)
    cnclip_model_unref (entry->model);
  g_clear_error (&entry->error);
  g_free (entry->key);
  g_free (entry);
}

CnclipModel *
clip_model_cache_acquire (const char *model_dir, const CnclipModelParams *params, GError **error)
{
  CacheEntry *entry;
  CnclipModel *model = NULL;
  char *key;

  g_return_val_if_fail (model_dir != NULL, NULL);
  g_return_val_if_fail (params != NULL, NULL);

  key = make_key (model_dir, params);
  g_mutex_lock (&cache_lock);
  if (cache_by_key == NULL)
    cache_by_key = g_hash_table_new (g_str_hash, g_str_equal);
  entry = g_hash_table_lookup (cache_by_key, key);
  if (entry == NULL) {
    entry = g_new0 (CacheEntry, 1);
    entry->key = key;
    entry->loading = TRUE;
    entry->users = 1;
    g_hash_table_insert (cache_by_key, entry->key, entry);
    g_mutex_unlock (&cache_lock);

    GError *load_error = NULL;
    model = cnclip_model_load (model_dir, params, &load_error);

    g_mutex_lock (&cache_lock);
    entry->loading = FALSE;
    entry->model = model;
    entry->error = load_error;
    g_cond_broadcast (&cache_cond);
  } else {
    g_free (key);
    entry->users++;
    while (entry->loading)
      g_cond_wait (&cache_cond, &cache_lock);
  }

  if (entry->model != NULL) {
    model = entry->model;
  } else {
    /* Each waiter gets its own copy of the loader's error; the entry goes
     * away with its last user, so the next start tries to load again. */
    if (error)
      *error = g_error_copy (entry->error);
    model = NULL;
    entry_drop_user (entry);
  }
  g_mutex_unlock (&cache_lock);
  return model;
}

void
clip_model_cache_release (CnclipModel *model)
{
  GHashTableIter iter;
  gpointer value;

  if (model == NULL)
    return;
  g_mutex_lock (&cache_lock);
  if (cache_by_key != NULL) {
    g_hash_table_iter_init (&iter, cache_by_key);
    while (g_hash_table_iter_next (&iter, NULL, &value)) {
      CacheEntry *entry = value;
      if (entry->model == model) {
        entry_drop_user (entry);
        g_mutex_unlock (&cache_lock);
        return;
      }
    }
  }
  g_mutex_unlock (&cache_lock);
  g_critical ("clip_model_cache_release: model %p is not in the cache", model);
}

guint
clip_model_cache_size (void)
{
  guint n;

  g_mutex_lock (&cache_lock);
  n = cache_by_key ? g_hash_table_size (cache_by_key) : 0;
  g_mutex_unlock (&cache_lock);
  return n;
}
