/* comm_mpi.c: the transport of libcnnrt_mpi: Open MPI (or any MPI), from the
 * main thread only; the pool's threads never call it.
 *
 * Errors are fatal (MPI_ERRORS_ARE_FATAL on MPI_COMM_WORLD, MPI's default):
 * a rank that dies takes the job down through mpirun rather than leave the
 * others waiting in a broadcast. */
#include "rt.h"

#include <limits.h>
#include <stdlib.h>
#include <mpi.h>

int rt_comm_start(int *argc, char ***argv, int *rank, int *size)
{
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return -1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
}

void rt_comm_bcast(void *buf, size_t bytes, int root)
{
    char *p = buf;
    while (bytes > 0) {
        int chunk = bytes > INT_MAX ? INT_MAX : (int)bytes;
        MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD);
        p += chunk;
        bytes -= (size_t)chunk;
    }
}

void rt_comm_allgather(const void *mine, size_t bytes, void *all)
{
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

void rt_comm_abort(int status)
{
    MPI_Abort(MPI_COMM_WORLD, status);
    exit(status); /* MPI_Abort does not return; its declaration does not say so */
}

void rt_comm_end(void)
{
    MPI_Finalize();
}
