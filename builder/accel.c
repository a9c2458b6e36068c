/* Choosing KVM or TCG.
 *
 * /dev/kvm existing is not enough: under nested virtualisation a KVM guest
 * can hang as soon as it leaves real mode.  So AUTO boots a probe guest
 * under KVM with a hard deadline.  The probe is a 64 KiB BIOS image built
 * here at run time; it goes from real mode through protected mode into
 * long mode (where the hangs were seen) and then writes a line to the
 * serial port and exits qemu through the isa-debug-exit device.  Only when
 * that line appears and qemu exits with the probe's status is KVM used. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder/accel.h"
#include "common/clock.h"
#include "common/io.h"
#include "common/subprocess.h"
#include "vab/progress.h"

#define PROBE_TIMEOUT_MS 5000
#define PROBE_ROM_SIZE 65536
#define PROBE_LINE "VAB-ACCEL-OK"
/* isa-debug-exit turns the byte written (0x21) into exit status 0x21*2+1. */
#define PROBE_EXIT_STATUS 67

/* The probe's code, at the start of the ROM.  qemu maps a 64 KiB BIOS at
 * 0xF0000 below 1 MiB and at the top of 4 GiB; the reset vector at ROM
 * offset 0xFFF0 jumps to offset 0 through the low copy. */
static const unsigned char probe_code[] = {
    /* .code16 */
    0xfa,                                     /* cli */
    0xb8, 0x00, 0xf0,                         /* mov $0xf000,%ax */
    0x8e, 0xd8,                               /* mov %ax,%ds */
    0x66, 0x0f, 0x01, 0x16, 0xe0, 0x00,       /* lgdtl 0xe0 (gdt_ptr) */
    0x0f, 0x20, 0xc0,                         /* mov %cr0,%eax */
    0x66, 0x83, 0xc8, 0x01,                   /* or $1,%eax (PE) */
    0x0f, 0x22, 0xc0,                         /* mov %eax,%cr0 */
    0x66, 0xea, 0x1e, 0x00, 0x0f, 0x00,       /* ljmpl $0x08,$0xf001e */
    0x08, 0x00,
    /* .code32, at 0x1e */
    0x66, 0xb8, 0x10, 0x00,                   /* mov $0x10,%ax */
    0x8e, 0xd8,                               /* mov %ax,%ds */
    0x8e, 0xc0,                               /* mov %ax,%es */
    0x8e, 0xd0,                               /* mov %ax,%ss */
    0xbf, 0x00, 0x10, 0x00, 0x00,             /* mov $0x1000,%edi */
    0x31, 0xc0,                               /* xor %eax,%eax */
    0xb9, 0x00, 0x0c, 0x00, 0x00,             /* mov $0xc00,%ecx */
    0xf3, 0xab,                               /* rep stosl: clear tables */
    0xc7, 0x05, 0x00, 0x10, 0x00, 0x00,       /* movl $0x2003,0x1000 */
    0x03, 0x20, 0x00, 0x00,                   /*   PML4[0] -> PDPT */
    0xc7, 0x05, 0x00, 0x20, 0x00, 0x00,       /* movl $0x3003,0x2000 */
    0x03, 0x30, 0x00, 0x00,                   /*   PDPT[0] -> PD */
    0xc7, 0x05, 0x00, 0x30, 0x00, 0x00,       /* movl $0x83,0x3000 */
    0x83, 0x00, 0x00, 0x00,                   /*   PD[0]: 2 MiB at 0 */
    0xb8, 0x00, 0x10, 0x00, 0x00,             /* mov $0x1000,%eax */
    0x0f, 0x22, 0xd8,                         /* mov %eax,%cr3 */
    0x0f, 0x20, 0xe0,                         /* mov %cr4,%eax */
    0x83, 0xc8, 0x20,                         /* or $0x20,%eax (PAE) */
    0x0f, 0x22, 0xe0,                         /* mov %eax,%cr4 */
    0xb9, 0x80, 0x00, 0x00, 0xc0,             /* mov $0xc0000080,%ecx */
    0x0f, 0x32,                               /* rdmsr (EFER) */
    0x0d, 0x00, 0x01, 0x00, 0x00,             /* or $0x100,%eax (LME) */
    0x0f, 0x30,                               /* wrmsr */
    0x0f, 0x20, 0xc0,                         /* mov %cr0,%eax */
    0x0d, 0x00, 0x00, 0x00, 0x80,             /* or $0x80000000,%eax (PG) */
    0x0f, 0x22, 0xc0,                         /* mov %eax,%cr0 */
    0xea, 0x85, 0x00, 0x0f, 0x00, 0x18, 0x00, /* ljmp $0x18,$0xf0085 */
    /* .code64, at 0x85 */
    0x66, 0xba, 0xf8, 0x03,                   /* mov $0x3f8,%dx (COM1) */
    0x48, 0x8d, 0x35, 0x14, 0x00, 0x00, 0x00, /* lea msg(%rip),%rsi */
    0xb9, 0x0d, 0x00, 0x00, 0x00,             /* mov $13,%ecx */
    0xac,                                     /* 1: lodsb */
    0xee,                                     /* out %al,%dx */
    0xe2, 0xfc,                               /* loop 1b */
    0x66, 0xba, 0xf4, 0x00,                   /* mov $0xf4,%dx */
    0xb0, 0x21,                               /* mov $0x21,%al */
    0xee,                                     /* out %al,%dx: qemu exits */
    0xfa,                                     /* 2: cli */
    0xf4,                                     /* hlt */
    0xeb, 0xfc,                               /* jmp 2b */
    /* msg, at 0xa4 */
    'V', 'A', 'B', '-', 'A', 'C', 'C', 'E', 'L', '-', 'O', 'K', '\n',
};

/* At ROM offset 0xc0: null, 32-bit code, 32-bit data, 64-bit code. */
static const unsigned char probe_gdt[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
    /* gdt_ptr, at 0xe0: limit 31, base 0xf00c0 */
    0x1f, 0x00, 0xc0, 0x00, 0x0f, 0x00,
};
#define PROBE_GDT_OFFSET 0xc0

/* At 0xfff0, the reset vector: ljmp $0xf000,$0 (real mode). */
static const unsigned char probe_reset[] = {0xea, 0x00, 0x00, 0x00, 0xf0};
#define PROBE_RESET_OFFSET 0xfff0

int vab_accel_parse(const char *text, enum vab_accel *out) {
  if (strcmp(text, "auto") == 0)
    *out = VAB_ACCEL_AUTO;
  else if (strcmp(text, "kvm") == 0)
    *out = VAB_ACCEL_KVM;
  else if (strcmp(text, "tcg") == 0)
    *out = VAB_ACCEL_TCG;
  else
    return -1;
  return 0;
}

const char *vab_accel_name(enum vab_accel accel) {
  switch (accel) {
  case VAB_ACCEL_AUTO:
    return "auto";
  case VAB_ACCEL_KVM:
    return "kvm";
  case VAB_ACCEL_TCG:
    return "tcg";
  }
  return "?";
}

/* Write the probe ROM to a new temporary file; path gets its name. */
static int write_probe_rom(struct vab_ctx *ctx, char *path, size_t path_len) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0')
    tmp = "/tmp";
  snprintf(path, path_len, "%s/vab-accel-probe-XXXXXX", tmp);
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create the KVM probe file in '%s'", tmp);
  unsigned char *rom = calloc(1, PROBE_ROM_SIZE);
  if (rom == NULL) {
    close(fd);
    unlink(path);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  memcpy(rom, probe_code, sizeof probe_code);
  memcpy(rom + PROBE_GDT_OFFSET, probe_gdt, sizeof probe_gdt);
  memcpy(rom + PROBE_RESET_OFFSET, probe_reset, sizeof probe_reset);
  int r = write_full(fd, rom, PROBE_ROM_SIZE);
  int e = errno;
  free(rom);
  if (close(fd) < 0 && r == 0) {
    r = -1;
    e = errno;
  }
  if (r < 0) {
    unlink(path);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot write '%s'", path);
  }
  return 0;
}

struct probe_output {
  bool saw_line;
  char last[160];   /* last other line: qemu's complaint, if any */
};

static void probe_line(void *opaque, const char *line) {
  struct probe_output *out = opaque;
  if (strcmp(line, PROBE_LINE) == 0)
    out->saw_line = true;
  else
    snprintf(out->last, sizeof out->last, "%s", line);
}

static int probe_cancelled(void *opaque) { return vab_cancelled(opaque); }


int vab_accel_probe(struct vab_ctx *ctx, enum vab_accel accel,
                    int timeout_ms, char *reason, size_t reason_len) {
  if (accel == VAB_ACCEL_AUTO)
    return vab_error(ctx, VAB_E_INTERNAL, "cannot probe accelerator 'auto'");
  if (!subprocess_have_program("qemu-system-x86_64"))
    return vab_error(ctx, VAB_E_SUBPROCESS,
                     "qemu-system-x86_64 not found on PATH "
                     "(Debian package qemu-system-x86)");
  char rom_path[4096];
  if (write_probe_rom(ctx, rom_path, sizeof rom_path) < 0)
    return -1;

  bool kvm = accel == VAB_ACCEL_KVM;
  char *argv[] = {
      "qemu-system-x86_64",
      "-accel", kvm ? "kvm" : "tcg",
      "-cpu", kvm ? "host" : "max",
      "-machine", "pc",
      "-m", "16",
      "-bios", rom_path,
      "-nodefaults", "-display", "none", "-monitor", "none",
      "-serial", "stdio",
      "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
      "-no-reboot",
      NULL,
  };
  struct subprocess proc;
  if (subprocess_start(&proc, argv, NULL) < 0) {
    int e = errno;
    unlink(rom_path);
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, e,
                           "cannot start qemu-system-x86_64");
  }
  struct probe_output out = {false, ""};
  int status = 0;
  double start = now_seconds();
  int r = subprocess_wait(&proc, probe_line, &out, probe_cancelled, ctx,
                          timeout_ms, &status);
  int e = errno;
  double seconds = now_seconds() - start;
  unlink(rom_path);

  if (r < 0 && e == ECANCELED)
    return vab_check_cancel(ctx);
  if (r < 0 && e == ETIMEDOUT) {
    snprintf(reason, reason_len, "%s probe timed out after %d s%s",
             kvm ? "KVM" : "TCG", timeout_ms / 1000,
             kvm ? " (nested KVM?)" : "");
    return 0;
  }
  if (r < 0)
    return vab_error_errno(ctx, VAB_E_SUBPROCESS, e,
                           "waiting for the accelerator probe failed");
  if (out.saw_line && WIFEXITED(status) &&
      WEXITSTATUS(status) == PROBE_EXIT_STATUS) {
    snprintf(reason, reason_len, "%s probe ran in %.1f s",
             kvm ? "KVM" : "TCG", seconds);
    return 1;
  }
  char how[96];
  subprocess_describe_status(status, how, sizeof how);
  snprintf(reason, reason_len, "%s probe failed: qemu %s%s%s",
           kvm ? "KVM" : "TCG", how, out.last[0] ? ": " : "", out.last);
  return 0;
}

/* One probe per process: builds start several VMs and the answer does not
 * change while they run. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static bool cache_valid;
static bool cache_kvm_works;
static char cache_reason[256];

static int probe_kvm_cached(struct vab_ctx *ctx, bool *works, char *reason,
                            size_t reason_len) {
  pthread_mutex_lock(&cache_lock);
  if (!cache_valid) {
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      snprintf(cache_reason, sizeof cache_reason, "cannot open /dev/kvm: %s",
               strerror(errno));
      cache_kvm_works = false;
    } else {
      close(fd);
      vab_log(ctx, VAB_LOG_INFO, "probing KVM (at most %d s)",
              PROBE_TIMEOUT_MS / 1000);
      int r = vab_accel_probe(ctx, VAB_ACCEL_KVM, PROBE_TIMEOUT_MS,
                              cache_reason, sizeof cache_reason);
      if (r < 0) {
        pthread_mutex_unlock(&cache_lock);
        return -1;
      }
      cache_kvm_works = r == 1;
    }
    cache_valid = true;
  }
  *works = cache_kvm_works;
  snprintf(reason, reason_len, "%s", cache_reason);
  pthread_mutex_unlock(&cache_lock);
  return 0;
}

int vab_accel_resolve(struct vab_ctx *ctx, enum vab_accel requested,
                      enum vab_accel *resolved, char *reason,
                      size_t reason_len) {
  char why[256] = "";
  if (reason_len > 0)
    reason[0] = '\0';
  if (requested == VAB_ACCEL_TCG) {
    *resolved = VAB_ACCEL_TCG;
    snprintf(reason, reason_len, "TCG requested");
    return 0;
  }
  bool works;
  if (probe_kvm_cached(ctx, &works, why, sizeof why) < 0)
    return -1;
  if (works) {
    vab_log(ctx, VAB_LOG_INFO, "%s; using KVM", why);
    *resolved = VAB_ACCEL_KVM;
    return 0;
  }
  if (requested == VAB_ACCEL_KVM) {
    vab_error(ctx, VAB_E_UNSUPPORTED, "KVM was requested but does not work: %s",
              why);
    vab_diag_hint(ctx, "use --accel tcg (slower) or --accel auto");
    return -1;
  }
  vab_log(ctx, VAB_LOG_INFO, "%s; using TCG", why);
  *resolved = VAB_ACCEL_TCG;
  snprintf(reason, reason_len, "%s", why);
  return 0;
}
