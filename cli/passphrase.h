/* --passphrase-env NAME / --passphrase-fd N, shared by keygen and sign. */
#ifndef VAB_CLI_PASSPHRASE_H
#define VAB_CLI_PASSPHRASE_H

/* Returns 0 and *out (malloc'd, or NULL when neither option was given),
 * or -1 after printing why.  The passphrase is never echoed or logged. */
int cli_passphrase_read(const char *cmd, const char *env_name, int fd,
                        char **out);
/* Overwrite and free. */
void cli_passphrase_free(char *p);

#endif
