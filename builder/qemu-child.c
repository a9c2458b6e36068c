/* Finding the appliance's qemu among this process's children (see
 * qemu-child.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/qemu-child.h"
#include "common/buf.h"

/* Does one argument hold "file=" followed by the escaped name, as a whole
 * option (at the start or after a ',', and ending at the end or at a ','
 * that is not the first of an escaped ",,")? */
static bool arg_has_file(const char *arg, const char *name) {
  size_t name_len = strlen(name);
  for (const char *p = arg; (p = strstr(p, "file=")) != NULL; p++) {
    if (p != arg && p[-1] != ',')
      continue;
    const char *value = p + 5;
    if (strncmp(value, name, name_len) != 0)
      continue;
    const char *after = value + name_len;
    if (*after == '\0' || (after[0] == ',' && after[1] != ','))
      return true;
  }
  return false;
}

static bool cmdline_has_file(const char *cmdline, size_t len,
                             const char *path) {
  /* In an option string a ',' of the name is written ",,". */
  struct buf name = BUF_INIT;
  for (const char *c = path; *c != '\0'; c++)
    if ((*c == ',' && buf_putc(&name, ',') < 0) || buf_putc(&name, *c) < 0) {
      buf_release(&name);
      return false;
    }
  if (name.data == NULL)
    return false;
  bool found = false;
  for (size_t at = 0; at < len && !found;) {
    const char *arg = cmdline + at;
    size_t arg_len = strnlen(arg, len - at);
    if (at + arg_len < len)  /* a whole, NUL-terminated argument */
      found = arg_has_file(arg, name.data);
    at += arg_len + 1;
  }
  buf_release(&name);
  return found;
}

/* libguestfs may pass a relative name as is, with "./" before it, or made
 * absolute: any of the three is this disk. */
bool qemu_cmdline_uses_disk(const char *cmdline, size_t len,
                            const char *disk_path) {
  if (cmdline_has_file(cmdline, len, disk_path))
    return true;
  bool found = false;
  if (disk_path[0] != '/') {
    char *dotted = NULL;
    if (asprintf(&dotted, "./%s", disk_path) >= 0) {
      found = cmdline_has_file(cmdline, len, dotted);
      free(dotted);
    }
  }
  char *absolute = found ? NULL : realpath(disk_path, NULL);
  found = found || (absolute != NULL && strcmp(absolute, disk_path) != 0 &&
                    cmdline_has_file(cmdline, len, absolute));
  free(absolute);
  return found;
}

/* The whole of /proc/PID/cmdline in *out (malloc'd), its length in *len. */
static int read_cmdline(long pid, char **out, size_t *len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return -1;
  struct buf text = BUF_INIT;
  char chunk[4096];
  size_t n;
  int ret = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (buf_append(&text, chunk, n) < 0) {
      ret = -1;
      break;
    }
  if (ferror(f))
    ret = -1;
  fclose(f);
  if (ret < 0) {
    buf_release(&text);
    return -1;
  }
  *len = text.len;
  *out = text.data;
  return 0;
}

/* Is pid a child of parent whose command name starts with "qemu"? */
static bool is_qemu_child(long pid, pid_t parent) {
  char path[64], stat_line[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return false;
  size_t n = fread(stat_line, 1, sizeof stat_line - 1, f);
  fclose(f);
  stat_line[n] = '\0';
  /* "pid (comm) state ppid ..."; comm may hold spaces and ')', so the
   * fields after it are parsed from the last ')'. */
  char *comm = strchr(stat_line, '(');
  char *close_paren = strrchr(stat_line, ')');
  char state;
  long ppid = 0;
  if (comm == NULL || close_paren == NULL ||
      sscanf(close_paren + 1, " %c %ld", &state, &ppid) != 2)
    return false;
  return ppid == (long)parent && strncmp(comm + 1, "qemu", 4) == 0;
}

size_t qemu_children_using_disk(const char *disk_path, pid_t *pids,
                                size_t max) {
  DIR *proc = opendir("/proc");
  if (proc == NULL)
    return 0;
  pid_t self = getpid();
  size_t found = 0;
  struct dirent *d;
  while (found < max && (d = readdir(proc)) != NULL) {
    char *end = NULL;
    long pid = strtol(d->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || !is_qemu_child(pid, self))
      continue;
    char *cmdline = NULL;
    size_t len = 0;
    if (read_cmdline(pid, &cmdline, &len) < 0)
      continue;
    if (qemu_cmdline_uses_disk(cmdline, len, disk_path))
      pids[found++] = (pid_t)pid;
    free(cmdline);
  }
  closedir(proc);
  return found;
}
