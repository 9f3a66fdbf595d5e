/* clipworker.c: see clipworker.h. */
#include "clipworker.h"

struct _ClipWorker
{
  GMutex lock;
  GCond cond;
  gpointer slot; /* the queued job, or NULL */
  gboolean running;
  gboolean quit;
  GThread *thread;

  ClipWorkerFunc func;
  GDestroyNotify job_free;
  gpointer user_data;
};

static gpointer
worker_thread (gpointer data)
{
  ClipWorker *w = data;

  g_mutex_lock (&w->lock);
  while (!w->quit) {
    gpointer job;

    if (w->slot == NULL) {
      g_cond_wait (&w->cond, &w->lock);
      continue;
    }
    job = g_steal_pointer (&w->slot);
    w->running = TRUE;
    g_mutex_unlock (&w->lock);

    w->func (job, w->user_data);
    if (w->job_free)
      w->job_free (job);

    g_mutex_lock (&w->lock);
    w->running = FALSE;
    g_cond_broadcast (&w->cond);
  }
  g_mutex_unlock (&w->lock);
  return NULL;
}

ClipWorker *
clip_worker_new (const gchar *name, ClipWorkerFunc func, GDestroyNotify job_free,
                 gpointer user_data)
{
  ClipWorker *w = g_new0 (ClipWorker, 1);

  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->func = func;
  w->job_free = job_free;
  w->user_data = user_data;
  w->thread = g_thread_new (name, worker_thread, w);
  return w;
}

gboolean
clip_worker_is_busy (ClipWorker *w)
{
  gboolean busy;

  g_mutex_lock (&w->lock);
  busy = w->slot != NULL || w->running;
  g_mutex_unlock (&w->lock);
  return busy;
}

gboolean
clip_worker_submit (ClipWorker *w, gpointer job)
{
  gboolean taken = FALSE;

  g_mutex_lock (&w->lock);
  if (w->slot == NULL && !w->running && !w->quit) {
    w->slot = job;
    taken = TRUE;
    g_cond_broadcast (&w->cond);
  }
  g_mutex_unlock (&w->lock);
  if (!taken && w->job_free)
    w->job_free (job);
  return taken;
}

void
clip_worker_wait_idle (ClipWorker *w)
{
  g_mutex_lock (&w->lock);
  while (w->slot != NULL || w->running)
    g_cond_wait (&w->cond, &w->lock);
  g_mutex_unlock (&w->lock);
}

void
clip_worker_free (ClipWorker *w)
{
  gpointer job;

  if (w == NULL)
    return;
  g_mutex_lock (&w->lock);
  w->quit = TRUE;
  job = g_steal_pointer (&w->slot);
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
  if (job && w->job_free)
    w->job_free (job);
  g_thread_join (w->thread);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
  g_free (w);
}
