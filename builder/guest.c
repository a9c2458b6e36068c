/* The guest session on libguestfs (see guest.h): the real implementation
 * of vab/guest.h's ops, plus the builder-only calls.  The only file of vab
 * that includes guestfs.h. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <guestfs.h>

#include "vab/progress.h"
#include "common/buf.h"
#include "common/shell-quote.h"
#include "builder/guest.h"
#include "builder/qemu-child.h"

#define MAX_MOUNTS 8
#define TAIL_LINES 20
/* The appliance's memory: apt and initramfs rebuilds want more than the
 * libguestfs default. */
#define APPLIANCE_MEMORY_MB 1536
/* Where scripts and their environment are staged inside the guest. */
#define STAGE_DIR "/tmp/.vab-run"

struct mount_entry {
  char device[64];
  char mountpoint[256];
};

struct guest_session {
  struct vab_guest base;           /* what run halves get (vab/guest.h) */
  guestfs_h *h;
  struct vab_guest_opts opts;
  char *disk_path;
  char *disk_format;
  bool network;
  enum vab_phase phase;            /* for upload progress */
  char disk[32];                   /* "/dev/sda" */
  struct mount_entry mounts[MAX_MOUNTS];
  size_t n_mounts;

  /* Watchdog: kills the appliance's qemu when the build is cancelled. */
  pthread_t watchdog;
  bool watchdog_running;
  atomic_int stop_watchdog;
  atomic_int qemu_pid;             /* 0 when not running */
  atomic_int launching;            /* inside guestfs_launch() */

  /* Console output of the appliance, assembled into lines. */
  struct buf partial;
  char *tail[TAIL_LINES];          /* ring of the last lines */
  size_t tail_next;
  struct buf tail_text;            /* what vab_guest_output_tail() returns */
  bool capture_tail;
};

static const struct vab_guest_ops session_ops;

/* The session behind a handle.  Only handles from vab_guest_launch() may
 * reach the builder-only calls of builder/guest.h. */
static struct guest_session *session_of(struct vab_guest *guest) {
  assert(guest->ops == &session_ops);
  return (struct guest_session *)((char *)guest -
                                  offsetof(struct guest_session, base));
}

static const struct guest_session *session_of_const(
    const struct vab_guest *guest) {
  assert(guest->ops == &session_ops);
  return (const struct guest_session *)((const char *)guest -
                                        offsetof(struct guest_session, base));
}

/* SOURCE_DATE_EPOCH is set (builder/reproducible.h checks its value). */
static bool reproducible_build(void) {
  const char *epoch = getenv("SOURCE_DATE_EPOCH");
  return epoch != NULL && *epoch != '\0';
}

static int guest_error(struct guest_session *g, enum vab_code code,
                       const char *what) {
  const char *detail = g->h != NULL ? guestfs_last_error(g->h) : NULL;
  if (vab_cancelled(g->base.ctx))
    return vab_error(g->base.ctx, VAB_E_CANCELLED, "interrupted during %s",
                     what);
  if (detail == NULL || *detail == '\0')
    return vab_error(g->base.ctx, code, "builder VM: %s failed", what);
  return vab_error(g->base.ctx, code, "builder VM: %s: %s", what, detail);
}

/* Console lines: logged at debug level and kept in a ring for errors. */
static void tail_push(struct guest_session *g, const char *line) {
  free(g->tail[g->tail_next]);
  g->tail[g->tail_next] = strdup(line);
  g->tail_next = (g->tail_next + 1) % TAIL_LINES;
}

static void tail_reset(struct guest_session *g) {
  for (size_t i = 0; i < TAIL_LINES; i++) {
    free(g->tail[i]);
    g->tail[i] = NULL;
  }
  g->tail_next = 0;
}

static void console_line(struct guest_session *g, const char *line) {
  /* Keep the log plain text. */
  char *clean = text_plain_copy(line);
  if (clean == NULL)
    return;
  vab_log(g->base.ctx, VAB_LOG_DEBUG, "guest: %s", clean);
  if (g->capture_tail)
    tail_push(g, clean);
  free(clean);
}

static void console_flush(struct guest_session *g) {
  if (g->partial.len > 0) {
    console_line(g, g->partial.data);
    buf_truncate(&g->partial, 0);
  }
}

static void console_bytes(struct guest_session *g, const char *data,
                          size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '\n') {
      if (g->partial.len == 0)
        console_line(g, "");
      else
        console_flush(g);
    } else if (buf_putc(&g->partial, data[i]) < 0) {
      return;
    }
  }
}

static void on_event(guestfs_h *h, void *opaque, uint64_t event,
                     int event_handle, int flags, const char *buf,
                     size_t buf_len, const uint64_t *array,
                     size_t array_len) {
  (void)h;
  (void)event_handle;
  (void)flags;
  struct guest_session *g = opaque;
  if (event == GUESTFS_EVENT_APPLIANCE) {
    console_bytes(g, buf, buf_len);
  } else if (event == GUESTFS_EVENT_PROGRESS && array_len >= 4) {
    /* array = {proc_nr, serial, position, total}.  A callback that asks
     * to stop cancels the build; the watchdog then stops the appliance. */
    if (!vab_cancelled(g->base.ctx) &&
        vab_progress(g->base.ctx, g->phase, "upload", array[2], array[3]) < 0)
      vab_ctx_cancel(g->base.ctx);
  } else {
    vab_log(g->base.ctx, VAB_LOG_DEBUG, "libguestfs: %.*s", (int)buf_len, buf);
  }
}

/* While guestfs_launch() runs there is no pid to ask for (the handle is
 * busy, and guestfs_get_pid() answers only once launched), yet a launch
 * takes a minute under TCG on a loaded host.  libguestfs's direct backend
 * forks qemu itself: kill the qemu child whose command line attaches this
 * session's work disk, never another qemu of this process (a concurrent
 * boot test's boots an overlay; see qemu-child.h). */
static void kill_launching_qemu(const struct guest_session *g) {
  pid_t pids[4];
  size_t n = qemu_children_using_disk(g->disk_path, pids,
                                      sizeof pids / sizeof *pids);
  for (size_t i = 0; i < n; i++)
    kill(pids[i], SIGKILL);
}

static void *watchdog_main(void *opaque) {
  struct guest_session *g = opaque;
  while (!atomic_load(&g->stop_watchdog)) {
    if (vab_cancelled(g->base.ctx)) {
      int pid = atomic_exchange(&g->qemu_pid, 0);
      if (pid > 0)
        kill(pid, SIGKILL);
      else if (atomic_load(&g->launching))
        kill_launching_qemu(g);
    }
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static int launch_handle(struct guest_session *g) {
  struct vab_ctx *ctx = g->base.ctx;
  if (vab_check_cancel(ctx) < 0)
    return -1;
  g->h = guestfs_create_flags(0);
  if (g->h == NULL)
    return vab_error(ctx, VAB_E_GUEST, "cannot create a libguestfs handle");
  guestfs_set_error_handler(g->h, NULL, NULL);
  if (guestfs_set_event_callback(g->h, on_event,
                                 GUESTFS_EVENT_APPLIANCE |
                                     GUESTFS_EVENT_LIBRARY |
                                     GUESTFS_EVENT_WARNING |
                                     GUESTFS_EVENT_PROGRESS,
                                 0, g) == -1)
    return guest_error(g, VAB_E_GUEST, "set_event_callback");
  if (guestfs_set_backend(g->h, "direct") == -1)
    return guest_error(g, VAB_E_GUEST, "set_backend");
  /* libguestfs would try KVM and hang where nested KVM is broken: the
   * accelerator was probed once, and TCG is forced when it won. */
  char force_tcg[] = "force_tcg";
  char *tcg_settings[] = {force_tcg, NULL};
  char *no_settings[] = {NULL};
  if (guestfs_set_backend_settings(
          g->h, g->opts.accel == VAB_ACCEL_TCG ? tcg_settings : no_settings) ==
      -1)
    return guest_error(g, VAB_E_GUEST, "set_backend_settings");
  if (guestfs_set_memsize(g->h, APPLIANCE_MEMORY_MB) == -1)
    return guest_error(g, VAB_E_GUEST, "set_memsize");
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  /* A reproducible build allocates blocks from one vCPU: ext4 keeps a
   * preallocation per CPU, and which one a write lands on is timing. */
  if (reproducible_build())
    cpus = 1;
  if (guestfs_set_smp(g->h, cpus >= 2 ? 2 : 1) == -1)
    return guest_error(g, VAB_E_GUEST, "set_smp");
  if (guestfs_set_network(g->h, g->network) == -1)
    return guest_error(g, VAB_E_GUEST, "set_network");
  /* The work disk is a scratch file: no need for host flushes, and
   * discards punch holes so that free space costs nothing. */
  if (guestfs_add_drive_opts(g->h, g->disk_path,
                             GUESTFS_ADD_DRIVE_OPTS_FORMAT, g->disk_format,
                             GUESTFS_ADD_DRIVE_OPTS_CACHEMODE, "unsafe",
                             GUESTFS_ADD_DRIVE_OPTS_DISCARD, "besteffort",
                             -1) == -1)
    return guest_error(g, VAB_E_GUEST, "add_drive");
  vab_log(ctx, VAB_LOG_INFO, "starting the builder VM (%s%s)",
          vab_accel_name(g->opts.accel), g->network ? ", network on" : "");
  atomic_store(&g->launching, 1);
  int launched = guestfs_launch(g->h);
  atomic_store(&g->launching, 0);
  if (launched == -1)
    return guest_error(g, VAB_E_GUEST, "launch");
  int pid = guestfs_get_pid(g->h);
  atomic_store(&g->qemu_pid, pid > 0 ? pid : 0);
  /* A cancel that came during launch found no pid to kill. */
  if (vab_cancelled(ctx)) {
    if (pid > 0)
      kill(pid, SIGKILL);
    return vab_check_cancel(ctx);
  }
  char **devices = guestfs_list_devices(g->h);
  if (devices == NULL || devices[0] == NULL) {
    if (devices != NULL)
      free(devices);
    return guest_error(g, VAB_E_GUEST, "list_devices");
  }
  snprintf(g->disk, sizeof g->disk, "%s", devices[0]);
  for (size_t i = 0; devices[i] != NULL; i++)
    free(devices[i]);
  free(devices);
  return 0;
}

static void close_handle(struct guest_session *g) {
  if (g->h == NULL)
    return;
  console_flush(g);
  guestfs_close(g->h);
  g->h = NULL;
  atomic_store(&g->qemu_pid, 0);
}

int vab_guest_launch(struct vab_ctx *ctx, const struct vab_guest_opts *opts,
                     struct vab_guest **out) {
  *out = NULL;
  struct guest_session *g = calloc(1, sizeof *g);
  if (g == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  g->base.ops = &session_ops;
  g->base.ctx = ctx;
  g->opts = *opts;
  g->disk_path = strdup(opts->disk_path);
  g->disk_format = strdup(opts->disk_format);
  g->network = opts->network;
  atomic_init(&g->stop_watchdog, 0);
  atomic_init(&g->qemu_pid, 0);
  atomic_init(&g->launching, 0);
  if (g->disk_path == NULL || g->disk_format == NULL) {
    vab_guest_abort(&g->base);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) {
    vab_guest_abort(&g->base);
    return vab_error(ctx, VAB_E_INTERNAL, "cannot start the watchdog thread");
  }
  g->watchdog_running = true;
  if (launch_handle(g) < 0) {
    vab_guest_abort(&g->base);
    return -1;
  }
  *out = &g->base;
  return 0;
}

static void release(struct guest_session *g) {
  if (g->watchdog_running) {
    atomic_store(&g->stop_watchdog, 1);
    pthread_join(g->watchdog, NULL);
  }
  tail_reset(g);
  buf_release(&g->partial);
  buf_release(&g->tail_text);
  free(g->disk_path);
  free(g->disk_format);
  free(g);
}

void vab_guest_abort(struct vab_guest *guest) {
  if (guest == NULL)
    return;
  struct guest_session *g = session_of(guest);
  int pid = atomic_exchange(&g->qemu_pid, 0);
  if (pid > 0)
    kill(pid, SIGKILL);
  close_handle(g);
  release(g);
}

/* Unmount, flush and stop the appliance, reporting errors. */
static int shutdown_handle(struct guest_session *g) {
  int r = 0;
  if (guestfs_umount_all(g->h) == -1)
    r = guest_error(g, VAB_E_GUEST, "umount_all");
  if (r == 0 && guestfs_shutdown(g->h) == -1)
    r = guest_error(g, VAB_E_GUEST, "shutdown");
  close_handle(g);
  return r;
}

int vab_guest_close(struct vab_guest *guest) {
  if (guest == NULL)
    return 0;
  struct guest_session *g = session_of(guest);
  int r = shutdown_handle(g);
  release(g);
  return r;
}

void vab_guest_set_phase(struct vab_guest *guest, enum vab_phase phase) {
  struct guest_session *g = session_of(guest);
  g->phase = phase;
}

int vab_guest_set_network(struct vab_guest *guest, bool on) {
  struct guest_session *g = session_of(guest);
  if (g->network == on)
    return 0;
  vab_log(g->base.ctx, VAB_LOG_INFO,
          "relaunching the builder VM with network %s", on ? "on" : "off");
  if (shutdown_handle(g) < 0)
    return -1;
  g->network = on;
  if (launch_handle(g) < 0)
    return -1;
  /* Redo the mounts in the order they were made. */
  size_t n = g->n_mounts;
  g->n_mounts = 0;
  for (size_t i = 0; i < n; i++) {
    struct mount_entry m = g->mounts[i];
    if (vab_guest_mount(&g->base, m.device, m.mountpoint) < 0)
      return -1;
  }
  return 0;
}

const char *vab_guest_disk(const struct vab_guest *guest) {
  return session_of_const(guest)->disk;
}

int vab_guest_disk_size(struct vab_guest *guest, uint64_t *bytes) {
  struct guest_session *g = session_of(guest);
  int64_t size = guestfs_blockdev_getsize64(g->h, g->disk);
  if (size < 0)
    return guest_error(g, VAB_E_GUEST, "blockdev_getsize64");
  *bytes = (uint64_t)size;
  return 0;
}

void vab_guest_partition(const struct vab_guest *guest, int n, char *out,
                         size_t len) {
  const struct guest_session *g = session_of_const(guest);
  snprintf(out, len, "%s%d", g->disk, n);
}

int vab_guest_part_init(struct vab_guest *guest, const char *table) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_init(g->h, g->disk, table) == -1)
    return guest_error(g, VAB_E_GUEST, "part_init");
  return 0;
}

int vab_guest_part_add(struct vab_guest *guest, int64_t start, int64_t end) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_add(g->h, g->disk, "p", start, end) == -1)
    return guest_error(g, VAB_E_GUEST, "part_add");
  return 0;
}

int vab_guest_part_set_gpt_type(struct vab_guest *guest, int n,
                                const char *guid) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_set_gpt_type(g->h, g->disk, n, guid) == -1)
    return guest_error(g, VAB_E_GUEST, "part_set_gpt_type");
  return 0;
}

int vab_guest_part_set_mbr_id(struct vab_guest *guest, int n, int id) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_set_mbr_id(g->h, g->disk, n, id) == -1)
    return guest_error(g, VAB_E_GUEST, "part_set_mbr_id");
  return 0;
}

int vab_guest_part_set_bootable(struct vab_guest *guest, int n) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_set_bootable(g->h, g->disk, n, 1) == -1)
    return guest_error(g, VAB_E_GUEST, "part_set_bootable");
  return 0;
}

int vab_guest_part_count(struct vab_guest *guest, int *n) {
  struct guest_session *g = session_of(guest);
  struct guestfs_partition_list *parts = guestfs_part_list(g->h, g->disk);
  if (parts == NULL)
    return guest_error(g, VAB_E_GUEST, "part_list");
  int max = 0;
  for (uint32_t i = 0; i < parts->len; i++)
    if (parts->val[i].part_num > max)
      max = parts->val[i].part_num;
  guestfs_free_partition_list(parts);
  *n = max;
  return 0;
}

int vab_guest_part_set_disk_guid(struct vab_guest *guest, const char *guid) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_set_disk_guid(g->h, g->disk, guid) == -1)
    return guest_error(g, VAB_E_GUEST, "part_set_disk_guid");
  return 0;
}

int vab_guest_part_set_gpt_guid(struct vab_guest *guest, int n,
                                const char *guid) {
  struct guest_session *g = session_of(guest);
  if (guestfs_part_set_gpt_guid(g->h, g->disk, n, guid) == -1)
    return guest_error(g, VAB_E_GUEST, "part_set_gpt_guid");
  return 0;
}

int vab_guest_part_start(struct vab_guest *guest, int n, uint64_t *offset) {
  struct guest_session *g = session_of(guest);
  struct guestfs_partition_list *parts = guestfs_part_list(g->h, g->disk);
  if (parts == NULL)
    return guest_error(g, VAB_E_GUEST, "part_list");
  int r = -1;
  for (uint32_t i = 0; i < parts->len; i++)
    if (parts->val[i].part_num == n) {
      *offset = parts->val[i].part_start;
      r = 0;
    }
  guestfs_free_partition_list(parts);
  if (r < 0)
    return vab_error(g->base.ctx, VAB_E_GUEST, "the work disk has no "
                     "partition %d", n);
  return 0;
}

int vab_guest_part_grow(struct vab_guest *guest, int n) {
  struct guest_session *g = session_of(guest);
  char *table = guestfs_part_get_parttype(g->h, g->disk);
  if (table == NULL)
    return guest_error(g, VAB_E_GUEST, "part_get_parttype");
  bool gpt = strcmp(table, "gpt") == 0;
  free(table);
  /* A grown GPT disk still has its backup header at the old end. */
  if (gpt && guestfs_part_expand_gpt(g->h, g->disk) == -1)
    return guest_error(g, VAB_E_GUEST, "part_expand_gpt");
  /* GPT keeps 33 sectors at the end for the backup table. */
  int64_t size = guestfs_blockdev_getsz(g->h, g->disk);
  if (size < 0)
    return guest_error(g, VAB_E_GUEST, "blockdev_getsz");
  int64_t end = gpt ? size - 34 : size - 1;
  /* Keep the end aligned to 1 MiB so tools do not complain. */
  end = ((end + 1) / 2048) * 2048 - 1;
  if (guestfs_part_resize(g->h, g->disk, n, end) == -1)
    return guest_error(g, VAB_E_GUEST, "part_resize");
  return 0;
}

int vab_guest_mkfs(struct vab_guest *guest, const char *fstype,
                   const char *device, const char *label) {
  struct guest_session *g = session_of(guest);
  int r;
  if (label != NULL)
    r = guestfs_mkfs_opts(g->h, fstype, device, GUESTFS_MKFS_OPTS_LABEL, label,
                          -1);
  else
    r = guestfs_mkfs_opts(g->h, fstype, device, -1);
  if (r == -1)
    return guest_error(g, VAB_E_GUEST, "mkfs");
  return 0;
}

int vab_guest_fs_uuid(struct vab_guest *guest, const char *device, char *out,
                      size_t len) {
  struct guest_session *g = session_of(guest);
  char *uuid = guestfs_vfs_uuid(g->h, device);
  if (uuid == NULL)
    return guest_error(g, VAB_E_GUEST, "vfs_uuid");
  snprintf(out, len, "%s", uuid);
  free(uuid);
  if (*out == '\0')
    return vab_error(g->base.ctx, VAB_E_GUEST, "%s has no filesystem UUID",
                     device);
  return 0;
}

int vab_guest_mkfs_ext4(struct vab_guest *guest, const char *device,
                        const char *label, const char *uuid) {
  struct guest_session *g = session_of(guest);
  if (guestfs_mke2fs(g->h, device, GUESTFS_MKE2FS_FSTYPE, "ext4",
                     GUESTFS_MKE2FS_LABEL, label, GUESTFS_MKE2FS_UUID, uuid,
                     -1) == -1)
    return guest_error(g, VAB_E_GUEST, "mke2fs");
  return 0;
}

int vab_guest_set_fs_uuid(struct vab_guest *guest, const char *device,
                          const char *uuid) {
  struct guest_session *g = session_of(guest);
  if (guestfs_set_uuid(g->h, device, uuid) == -1)
    return guest_error(g, VAB_E_GUEST, "set_uuid");
  return 0;
}

int vab_guest_pread_device(struct vab_guest *guest, const char *device,
                           void *out, size_t len, int64_t offset) {
  struct guest_session *g = session_of(guest);
  size_t got = 0;
  char *data = guestfs_pread_device(g->h, device, (int)len, offset, &got);
  if (data == NULL)
    return guest_error(g, VAB_E_GUEST, "pread_device");
  int r = 0;
  if (got != len)
    r = vab_error(g->base.ctx, VAB_E_GUEST, "builder VM: %s: %zu bytes at "
                  "offset %lld, not %zu", device, got, (long long)offset, len);
  else
    memcpy(out, data, len);
  free(data);
  return r;
}

int vab_guest_pwrite_device(struct vab_guest *guest, const char *device,
                            const void *data, size_t len, int64_t offset) {
  struct guest_session *g = session_of(guest);
  int put = guestfs_pwrite_device(g->h, device, data, len, offset);
  if (put == -1)
    return guest_error(g, VAB_E_GUEST, "pwrite_device");
  if ((size_t)put != len)
    return vab_error(g->base.ctx, VAB_E_GUEST, "builder VM: %s: wrote %d of "
                     "%zu bytes at offset %lld", device, put, len,
                     (long long)offset);
  return 0;
}

int vab_guest_fs_type(struct vab_guest *guest, const char *device, char *out,
                      size_t len) {
  struct guest_session *g = session_of(guest);
  char *type = guestfs_vfs_type(g->h, device);
  if (type == NULL)
    return guest_error(g, VAB_E_GUEST, "vfs_type");
  snprintf(out, len, "%s", type);
  free(type);
  return 0;
}

int vab_guest_fs_grow(struct vab_guest *guest, const char *fstype,
                      const char *device, const char *mountpoint) {
  struct guest_session *g = session_of(guest);
  if (strcmp(fstype, "xfs") == 0) {
    if (guestfs_xfs_growfs(g->h, mountpoint, -1) == -1)
      return guest_error(g, VAB_E_GUEST, "xfs_growfs");
    return 0;
  }
  if (strncmp(fstype, "ext", 3) == 0) {
    if (guestfs_resize2fs(g->h, device) == -1)
      return guest_error(g, VAB_E_GUEST, "resize2fs");
    return 0;
  }
  return vab_error(g->base.ctx, VAB_E_UNSUPPORTED,
                   "cannot grow a %s filesystem (ext2/3/4 and xfs can be)",
                   fstype);
}

int vab_guest_fsck(struct vab_guest *guest, const char *fstype,
                   const char *device) {
  struct guest_session *g = session_of(guest);
  if (strcmp(fstype, "xfs") == 0) {
    int r = guestfs_xfs_repair(g->h, device, GUESTFS_XFS_REPAIR_NOMODIFY, 1,
                               -1);
    if (r == -1)
      return guest_error(g, VAB_E_GUEST, "xfs_repair");
    if (r != 0)
      return vab_error(g->base.ctx, VAB_E_GUEST,
                       "the xfs filesystem on %s is not clean", device);
    return 0;
  }
  int r = guestfs_fsck(g->h, fstype, device);
  if (r == -1)
    return guest_error(g, VAB_E_GUEST, "fsck");
  /* fsck exit status: bit 0 = errors corrected; anything else is bad. */
  if (r & ~1)
    return vab_error(g->base.ctx, VAB_E_GUEST,
                     "the %s filesystem on %s is not clean (fsck status %d)",
                     fstype, device, r);
  return 0;
}

int vab_guest_mount(struct vab_guest *guest, const char *device,
                    const char *mountpoint) {
  struct guest_session *g = session_of(guest);
  if (g->n_mounts >= MAX_MOUNTS)
    return vab_error(g->base.ctx, VAB_E_INTERNAL, "too many guest mounts");
  /* A reproducible build mounts ext4 with nodelalloc: blocks are then
   * allocated as each write() comes, in the order of the writes, not when
   * writeback happens to run; and data=writeback: a freed data block is
   * free at once, not when its transaction commits (timing).  Without a
   * journal, ext4 skips inodes deleted in the last minute instead, by the
   * clock: docs/build.md, "Reproducible builds". */
  const char *options = "";
  if (reproducible_build()) {
    char *type = guestfs_vfs_type(g->h, device);
    if (type == NULL)
      return guest_error(g, VAB_E_GUEST, "vfs_type");
    if (strcmp(type, "ext4") == 0)
      options = "nodelalloc,data=writeback";
    free(type);
  }
  if (guestfs_mount_options(g->h, options, device, mountpoint) == -1)
    return guest_error(g, VAB_E_GUEST, "mount");
  struct mount_entry *m = &g->mounts[g->n_mounts++];
  snprintf(m->device, sizeof m->device, "%s", device);
  snprintf(m->mountpoint, sizeof m->mountpoint, "%s", mountpoint);
  return 0;
}

int vab_guest_umount_all(struct vab_guest *guest) {
  struct guest_session *g = session_of(guest);
  g->n_mounts = 0;
  if (guestfs_umount_all(g->h) == -1)
    return guest_error(g, VAB_E_GUEST, "umount_all");
  return 0;
}

int vab_guest_sync(struct vab_guest *guest) {
  struct guest_session *g = session_of(guest);
  if (guestfs_sync(g->h) == -1)
    return guest_error(g, VAB_E_GUEST, "sync");
  return 0;
}

int vab_guest_inspect(struct vab_guest *guest, char *root, size_t root_len,
                      char *os, size_t os_len) {
  struct guest_session *g = session_of(guest);
  char **roots = guestfs_inspect_os(g->h);
  if (roots == NULL)
    return guest_error(g, VAB_E_GUEST, "inspect_os");
  if (roots[0] == NULL) {
    free(roots);
    root[0] = '\0';
    os[0] = '\0';
    return 0;
  }
  snprintf(root, root_len, "%s", roots[0]);
  char *distro = guestfs_inspect_get_distro(g->h, roots[0]);
  int major = guestfs_inspect_get_major_version(g->h, roots[0]);
  for (size_t i = 0; roots[i] != NULL; i++)
    free(roots[i]);
  free(roots);
  if (distro == NULL)
    return guest_error(g, VAB_E_GUEST, "inspect_get_distro");
  if (major > 0)
    snprintf(os, os_len, "%s%d", distro, major);
  else
    snprintf(os, os_len, "%s", distro);
  free(distro);
  return 0;
}

int vab_guest_tar_in(struct vab_guest *guest, const char *host_tar,
                     const char *dir) {
  struct guest_session *g = session_of(guest);
  /* xattrs carry file capabilities (ping's cap_net_raw). */
  if (guestfs_tar_in_opts(g->h, host_tar, dir, GUESTFS_TAR_IN_OPTS_XATTRS, 1,
                          -1) == -1)
    return guest_error(g, VAB_E_GUEST, "tar_in");
  return 0;
}

int vab_guest_mount_ro(struct vab_guest *guest, const char *device,
                       const char *mountpoint) {
  struct guest_session *g = session_of(guest);
  if (guestfs_mount_ro(g->h, device, mountpoint) == -1)
    return guest_error(g, VAB_E_GUEST, "mount_ro");
  return 0;
}

int vab_guest_tar_out(struct vab_guest *guest, const char *dir,
                      const char *host_tar) {
  struct guest_session *g = session_of(guest);
  if (guestfs_tar_out_opts(g->h, dir, host_tar, GUESTFS_TAR_OUT_OPTS_NUMERICOWNER,
                           1, GUESTFS_TAR_OUT_OPTS_XATTRS, 1,
                           GUESTFS_TAR_OUT_OPTS_ACLS, 1, -1) == -1)
    return guest_error(g, VAB_E_GUEST, "tar_out");
  return 0;
}

static int session_write(struct vab_guest *guest, const char *path,
                         const void *data, size_t len) {
  struct guest_session *g = session_of(guest);
  if (guestfs_write(g->h, path, data, len) == -1)
    return guest_error(g, VAB_E_GUEST, "write");
  return 0;
}

static int session_upload(struct vab_guest *guest, const char *host_path,
                          const char *path) {
  struct guest_session *g = session_of(guest);
  if (guestfs_upload(g->h, host_path, path) == -1)
    return guest_error(g, VAB_E_GUEST, "upload");
  return 0;
}

static int session_copy_in(struct vab_guest *guest, const char *host_path,
                           const char *dir) {
  struct guest_session *g = session_of(guest);
  if (guestfs_copy_in(g->h, host_path, dir) == -1)
    return guest_error(g, VAB_E_GUEST, "copy_in");
  return 0;
}

static int session_read(struct vab_guest *guest, const char *path, char **data,
                        size_t *len) {
  struct guest_session *g = session_of(guest);
  size_t n = 0;
  char *content = guestfs_read_file(g->h, path, &n);
  if (content == NULL)
    return guest_error(g, VAB_E_GUEST, "read_file");
  /* read_file does not promise a terminator. */
  char *copy = realloc(content, n + 1);
  if (copy == NULL) {
    free(content);
    return vab_error(g->base.ctx, VAB_E_NOMEM, "out of memory");
  }
  copy[n] = '\0';
  *data = copy;
  if (len != NULL)
    *len = n;
  return 0;
}

static int session_mkdir_p(struct vab_guest *guest, const char *path) {
  struct guest_session *g = session_of(guest);
  if (guestfs_mkdir_p(g->h, path) == -1)
    return guest_error(g, VAB_E_GUEST, "mkdir_p");
  return 0;
}

static int session_chmod(struct vab_guest *guest, unsigned mode,
                         const char *path) {
  struct guest_session *g = session_of(guest);
  if (guestfs_chmod(g->h, (int)mode, path) == -1)
    return guest_error(g, VAB_E_GUEST, "chmod");
  return 0;
}

static int session_exists(struct vab_guest *guest, const char *path,
                          bool *exists) {
  struct guest_session *g = session_of(guest);
  int r = guestfs_exists(g->h, path);
  if (r == -1)
    return guest_error(g, VAB_E_GUEST, "exists");
  *exists = r == 1;
  return 0;
}

static int session_rm_rf(struct vab_guest *guest, const char *path) {
  struct guest_session *g = session_of(guest);
  if (guestfs_rm_rf(g->h, path) == -1)
    return guest_error(g, VAB_E_GUEST, "rm_rf");
  return 0;
}

static int session_symlink(struct vab_guest *guest, const char *target,
                           const char *linkname) {
  struct guest_session *g = session_of(guest);
  if (guestfs_ln_sf(g->h, target, linkname) == -1)
    return guest_error(g, VAB_E_GUEST, "ln_sf");
  return 0;
}

int vab_guest_trim(struct vab_guest *guest, const char *mountpoint) {
  struct guest_session *g = session_of(guest);
  if (guestfs_fstrim(g->h, mountpoint, -1) == -1)
    return guest_error(g, VAB_E_GUEST, "fstrim");
  return 0;
}

/* The ring of the last output lines, as one string. */
static void tail_collect(struct guest_session *g) {
  buf_truncate(&g->tail_text, 0);
  for (size_t i = 0; i < TAIL_LINES; i++) {
    const char *line = g->tail[(g->tail_next + i) % TAIL_LINES];
    if (line == NULL)
      continue;
    if (g->tail_text.len > 0)
      buf_putc(&g->tail_text, '\n');
    buf_puts(&g->tail_text, line);
  }
}

static const char *session_output_tail(const struct vab_guest *guest) {
  const struct guest_session *g = session_of_const(guest);
  return g->tail_text.data != NULL ? g->tail_text.data : "";
}


/* Run a staged program with its output on the appliance's console, which
 * libguestfs hands to the event callback as it comes: that is how the
 * build log gets the output line by line while the step runs.  stdout of
 * the wrapper carries only the exit status. */
static int run_staged(struct guest_session *g, const char *program,
                      int *status) {
  struct buf wrapper = BUF_INIT;
  if (buf_printf(&wrapper,
                 ". " STAGE_DIR "/env; %s </dev/null >/dev/console 2>&1; "
                 "echo $?",
                 program) < 0) {
    buf_release(&wrapper);
    return vab_error(g->base.ctx, VAB_E_NOMEM, "out of memory");
  }
  char sh[] = "/bin/sh", dash_c[] = "-c";
  char *argv[] = {sh, dash_c, wrapper.data, NULL};
  tail_reset(g);
  console_flush(g);
  g->capture_tail = true;
  char *out = guestfs_command(g->h, argv);
  console_flush(g);
  g->capture_tail = false;
  tail_collect(g);
  buf_release(&wrapper);
  if (out == NULL)
    return guest_error(g, VAB_E_GUEST, "command");
  char *end = NULL;
  long code = strtol(out, &end, 10);
  bool ok = end != out && code >= 0 && code <= 255;
  free(out);
  if (!ok)
    return vab_error(g->base.ctx, VAB_E_GUEST,
                     "builder VM: no exit status from the guest command");
  *status = (int)code;
  return 0;
}

static int stage_env(struct guest_session *g, const char *const *env) {
  struct buf text = BUF_INIT;
  int r = 0;
  /* A predictable environment: apt must never ask questions. */
  static const char *const base[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", NULL,
  };
  for (int pass = 0; pass < 2 && r == 0; pass++) {
    const char *const *list = pass == 0 ? base : env;
    for (size_t i = 0; list != NULL && list[i] != NULL && r == 0; i++) {
      const char *eq = strchr(list[i], '=');
      if (eq == NULL)
        continue;
      if (buf_printf(&text, "export %.*s=", (int)(eq - list[i]), list[i]) < 0 ||
          shell_quote(&text, eq + 1) < 0 || buf_putc(&text, '\n') < 0)
        r = vab_error(g->base.ctx, VAB_E_NOMEM, "out of memory");
    }
  }
  /* A reproducible build's epoch reaches the guest's tools too: shadow's
   * useradd and chpasswd take /etc/shadow's change day from it. */
  const char *epoch = getenv("SOURCE_DATE_EPOCH");
  if (r == 0 && epoch != NULL && *epoch != '\0' &&
      (buf_puts(&text, "export SOURCE_DATE_EPOCH=") < 0 ||
       shell_quote(&text, epoch) < 0 || buf_putc(&text, '\n') < 0))
    r = vab_error(g->base.ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = session_write(&g->base, STAGE_DIR "/env",
                      text.data != NULL ? text.data : "", text.len);
  buf_release(&text);
  return r;
}

static int session_script(struct vab_guest *guest, const char *script,
                          const char *const *env, int *status) {
  struct guest_session *g = session_of(guest);
  if (session_mkdir_p(&g->base, STAGE_DIR) < 0 || stage_env(g, env) < 0 ||
      session_write(&g->base, STAGE_DIR "/script", script, strlen(script)) <
          0 ||
      session_chmod(&g->base, 0700, STAGE_DIR "/script") < 0)
    return -1;
  int r = run_staged(g, STAGE_DIR "/script", status);
  if (r == 0 && session_rm_rf(&g->base, STAGE_DIR) < 0)
    r = -1;
  return r;
}

int vab_guest_command(struct vab_guest *guest, const char *const *argv) {
  struct guest_session *g = session_of(guest);
  struct buf program = BUF_INIT;
  int r = 0;
  for (size_t i = 0; argv[i] != NULL && r == 0; i++)
    if ((i > 0 && buf_putc(&program, ' ') < 0) ||
        shell_quote(&program, argv[i]) < 0)
      r = vab_error(g->base.ctx, VAB_E_NOMEM, "out of memory");
  int status = 0;
  if (r == 0) {
    vab_log(g->base.ctx, VAB_LOG_DEBUG, "guest command: %s", program.data);
    if (session_mkdir_p(&g->base, STAGE_DIR) < 0 || stage_env(g, NULL) < 0 ||
        run_staged(g, program.data, &status) < 0 ||
        session_rm_rf(&g->base, STAGE_DIR) < 0)
      r = -1;
  }
  buf_release(&program);
  if (r == 0 && status != 0) {
    r = vab_error(g->base.ctx, VAB_E_GUEST,
                  "'%s' failed in the guest (exit status %d)", argv[0],
                  status);
    if (*session_output_tail(&g->base) != '\0')
      vab_diag_hint(g->base.ctx, "its last output lines:\n%s",
                    session_output_tail(&g->base));
  }
  return r;
}

/* The builder VM is not the booted appliance: a booted step that reached
 * it would be a planning error of the builder's. */
static int session_not_booted(struct vab_guest *g, const char *what) {
  return vab_error(g->ctx, VAB_E_GUEST,
                   "%s needs the booted appliance, not the builder VM", what);
}

static int session_ssh_endpoint(struct vab_guest *g,
                                struct vab_guest_ssh *ssh) {
  (void)ssh;
  return session_not_booted(g, "an SSH connection");
}

static int session_reboot(struct vab_guest *g) {
  return session_not_booted(g, "a reboot");
}

static const struct vab_guest_ops session_ops = {
  .name = "libguestfs",
  .write = session_write,
  .upload = session_upload,
  .copy_in = session_copy_in,
  .read = session_read,
  .mkdir_p = session_mkdir_p,
  .chmod = session_chmod,
  .exists = session_exists,
  .rm_rf = session_rm_rf,
  .symlink = session_symlink,
  .script = session_script,
  .output_tail = session_output_tail,
  .ssh_endpoint = session_ssh_endpoint,
  .reboot = session_reboot,
};
