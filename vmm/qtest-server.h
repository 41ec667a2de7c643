/*
 * The qtest protocol engine, separate from its transport so that fuzzers
 * and unit tests can feed it command lines directly.
 */
#ifndef QNIC_QTEST_SERVER_H
#define QNIC_QTEST_SERVER_H

#include "qnic/machine.h"
#include <stdio.h>

typedef struct QnicQtestServer QnicQtestServer;
typedef void QnicQtestOutput(void *opaque, const char *buf, size_t len);

QnicQtestServer *qnic_qtest_server_new(QnicMachine *m, QnicQtestOutput *out, void *opaque);
void qnic_qtest_server_set_machine(QnicQtestServer *s, QnicMachine *m);
void qnic_qtest_server_set_log(QnicQtestServer *s, FILE *log);
void qnic_qtest_server_free(QnicQtestServer *s);
/* One command line, without its newline. Replies go to out. */
void qnic_qtest_server_process(QnicQtestServer *s, const char *line);
/* Interrupt line change, reported when intercepted. */
void qnic_qtest_server_set_irq(QnicQtestServer *s, unsigned gsi, int level);

#endif
