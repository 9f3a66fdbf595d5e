/* clipworker.h: the async mode's inference thread with a one-slot mailbox.
 *
 * The streaming thread offers a job (a preprocessed frame); the worker takes
 * it only when it is idle, so the streaming thread never waits for inference
 * and a frame that arrives while the worker is busy is refused (the element
 * counts it as dropped). The worker therefore always starts on the newest
 * frame that arrived after it became free: the latest frame wins, and no queue
 * of stale frames builds up behind a slow model.
 *
 * Why refuse rather than replace a queued job: the offer happens before the
 * streaming thread converts the frame, so frames that would be replaced are
 * never converted at all (a 1080p frame costs a few ms to convert).
 *
 * Thread-safety: one producer thread calls clip_worker_is_busy() and
 * clip_worker_submit(); any thread may call clip_worker_wait_idle().
 */
#ifndef CLIP_WORKER_H
#define CLIP_WORKER_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ClipWorker ClipWorker;

/* Runs @job in the worker thread; the worker frees @job afterwards. */
typedef void (*ClipWorkerFunc) (gpointer job, gpointer user_data);

ClipWorker *clip_worker_new (const gchar *name, ClipWorkerFunc func, GDestroyNotify job_free,
                             gpointer user_data);

/* TRUE while a job is queued or running. */
gboolean clip_worker_is_busy (ClipWorker *worker);

/* Hands @job (transfer full) to the idle worker and returns TRUE; when the
 * worker is busy returns FALSE and frees @job. Never blocks on a job. */
gboolean clip_worker_submit (ClipWorker *worker, gpointer job);

/* Blocks until the job in flight (if any) has finished. */
void clip_worker_wait_idle (ClipWorker *worker);

/* Drops a queued job, waits for a running one (make it return early through
 * its own abort mechanism first), joins the thread, frees. NULL is ignored. */
void clip_worker_free (ClipWorker *worker);

G_END_DECLS

#endif /* CLIP_WORKER_H */
