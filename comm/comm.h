// The only place that talks to MPI. RAII communicators, typed collectives (alltoallv with its
// count exchange, allgather(v), gather), nonblocking point-to-point with request sets that
// compute loops can progress, and the error path: an MPI error becomes a CommError
// carrying MPI_Error_string and the rank; errors that ranks can all see are agreed on
// collectively (agree()) so every rank stops with the same one-line message instead of hanging.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/clock.h"
#include "comm/waiting.h"

namespace modelone::comm {

struct CommError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Raised on every rank when agree() finds that some rank failed; message() is that rank's.
struct AgreedError : std::runtime_error {
  AgreedError(const std::string& msg, int failed_rank)
      : std::runtime_error(msg), failed_rank(failed_rank) {}
  int failed_rank;
};

// Throws CommError("<what>: <MPI_Error_string>") when rc is not MPI_SUCCESS.
void check(int rc, const char* what);

// MPI_Init_thread / MPI_Finalize. Works under mpirun and without it (a singleton world).
// thread_multiple asks for MPI_THREAD_MULTIPLE (the watchdog's thread calls MPI); otherwise
// only the main thread does (MPI_THREAD_FUNNELED).
class Runtime {
 public:
  Runtime(int* argc, char*** argv, bool thread_multiple = false);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};

template <class T> MPI_Datatype mpi_type();
template <> inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <> inline MPI_Datatype mpi_type<int32_t>() { return MPI_INT32_T; }
template <> inline MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }
template <> inline MPI_Datatype mpi_type<uint64_t>() { return MPI_UINT64_T; }
template <> inline MPI_Datatype mpi_type<uint8_t>() { return MPI_UINT8_T; }
template <> inline MPI_Datatype mpi_type<char>() { return MPI_CHAR; }

enum class Op { Sum, Max, Min };

// A nonblocking collective in flight. Open MPI makes no background progress, so callers drive
// it with test() from their compute loops; the destructor waits for it.
class Request {
 public:
  Request() = default;
  ~Request();
  Request(Request&& o) noexcept;
  Request& operator=(Request&& o) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  bool active() const { return req_ != MPI_REQUEST_NULL; }
  bool test();  // true once complete (then inactive)
  void wait();

 private:
  friend class Comm;
  friend class RequestSet;
  MPI_Request req_ = MPI_REQUEST_NULL;
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  std::vector<int> arrays_;  // counts and displacements must outlive the operation
  void release();
};

// Requests in flight together (a halo exchange: several sends and receives). progress() lets a
// compute loop move them along between kernels; wait_all() finishes them.
class RequestSet {
 public:
  void add(Request&& r) { reqs_.push_back(std::move(r)); }
  bool empty() const { return reqs_.empty(); }
  bool progress();  // one MPI_Testall; true when every request is complete
  void wait_all();

 private:
  std::vector<Request> reqs_;
};

class Comm {
 public:
  Comm() = default;                 // null communicator
  static Comm world();              // MPI_COMM_WORLD (not freed)
  ~Comm();
  Comm(Comm&& o) noexcept;
  Comm& operator=(Comm&& o) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm raw() const { return comm_; }
  bool valid() const { return comm_ != MPI_COMM_NULL; }

  Comm split(int color, int key) const;
  Comm split_shared() const;        // ranks on this node

  void barrier() const;
  // A barrier that waits asleep (1 ms polls) instead of spinning: ranks idling while another
  // rank times a baseline leave it the cores.
  void barrier_idle() const;
  template <class T> void allreduce(T* data, int64_t n, Op op) const {
    const Waiting w(Call::Allreduce);
    check(MPI_Allreduce(MPI_IN_PLACE, data, int(n), mpi_type<T>(), mpi_op(op), comm_),
          "MPI_Allreduce");
  }
  template <class T> T allreduce(T v, Op op) const {
    allreduce(&v, 1, op);
    return v;
  }
  template <class T> void bcast(T* data, int64_t n, int root) const {
    const Waiting w(Call::Bcast);
    check(MPI_Bcast(data, int(n), mpi_type<T>(), root, comm_), "MPI_Bcast");
  }
  void bcast_string(std::string* s, int root) const;
  // Elements of T per destination, counts known on both sides (a raw MPI_Alltoallv).
  template <class T>
  void alltoallv(const T* send, const std::vector<int64_t>& send_counts, T* recv,
                 const std::vector<int64_t>& recv_counts) const;
  std::vector<int64_t> exchange_counts(const std::vector<int64_t>& send_counts) const;
  // Rows of row_bytes bytes each, counted in rows (a contiguous MPI datatype keeps the counts
  // far from the 2^31 limit on byte counts).
  void alltoallv_rows(const void* send, const std::vector<int64_t>& send_rows, void* recv,
                      const std::vector<int64_t>& recv_rows, int64_t row_bytes) const;
  Request ialltoallv_rows(const void* send, const std::vector<int64_t>& send_rows, void* recv,
                          const std::vector<int64_t>& recv_rows, int64_t row_bytes) const;

  // Nonblocking point-to-point of n elements (the buffer must outlive the request).
  template <class T> Request isend(const T* data, int64_t n, int dst, int tag) const {
    Request r;
    check(MPI_Isend(data, count32(n, "MPI_Isend"), mpi_type<T>(), dst, tag, comm_, &r.req_),
          "MPI_Isend");
    return r;
  }
  template <class T> Request irecv(T* data, int64_t n, int src, int tag) const {
    Request r;
    check(MPI_Irecv(data, count32(n, "MPI_Irecv"), mpi_type<T>(), src, tag, comm_, &r.req_),
          "MPI_Irecv");
    return r;
  }
  // recv[size * n] = every rank's send[n], in rank order.
  template <class T> void allgather(const T* send, int64_t n, T* recv) const {
    const Waiting w(Call::Allgather);
    check(MPI_Allgather(send, count32(n, "MPI_Allgather"), mpi_type<T>(), recv, int(n),
                        mpi_type<T>(), comm_),
          "MPI_Allgather");
  }
  // Every rank's n_i elements, concatenated in rank order; counts receives the n_i.
  template <class T> void allgatherv(const T* send, int64_t n, std::vector<T>* recv,
                                     std::vector<int64_t>* counts = nullptr) const;
  // recv[size * n] at root = every rank's send[n] in rank order (recv unused elsewhere).
  template <class T> void gather(const T* send, int64_t n, T* recv, int root) const {
    const Waiting w(Call::Gather);
    check(MPI_Gather(send, count32(n, "MPI_Gather"), mpi_type<T>(), recv, int(n), mpi_type<T>(),
                     root, comm_),
          "MPI_Gather");
  }
  // Every rank's n_i elements, concatenated in rank order at root (recv unused elsewhere).
  template <class T> void gatherv(const T* send, int64_t n, std::vector<T>* recv, int root) const;

 private:
  static MPI_Op mpi_op(Op op);
  static int count32(int64_t n, const char* what);
  // counts[i] and displacements for the v-collectives, checked against the int limit.
  static void v_arrays(const std::vector<int64_t>& counts, std::vector<int>* c, std::vector<int>* d);
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0, size_ = 1;
};

// Run `phase` on every rank; if it throws on any rank, throw AgreedError on every rank with the
// message of the lowest failing rank (an AgreedError from an agree nested inside, over the same
// ranks, keeps the rank it names). Phases must not themselves hang (collectives inside a
// phase must be reached by all ranks or none).
void agree(const Comm& comm, const std::function<void()>& phase);

// Every rank must hold the same (name, value) fields (the command line, the resolved config, the
// prompt): one exchange of hashes, and where they differ a second naming the first field that
// does and each value with its ranks. Throws AgreedError on every rank, e.g.
//   "ranks disagree on the command line, argument 4: '2' on ranks 0, 2; '3' on rank 1".
// Long values are shown by a digest. `what` names the set of fields.
void agree_fields(const Comm& comm, const std::string& what,
                  const std::vector<std::pair<std::string, std::string>>& fields);

// Last resort for errors that only some ranks see mid-run: print one line naming the rank and
// cause on stderr, then MPI_Abort so no rank is left waiting.
[[noreturn]] void abort_all(const std::string& msg, int code);


// The MPI library's version string (MPI_Get_library_version), e.g. "Open MPI v4.1.4, package:
// ...": benchmarks print it with their results so a number can be traced to the stack it ran on.
std::string library_version();

template <class T>
void Comm::alltoallv(const T* send, const std::vector<int64_t>& send_counts, T* recv,
                     const std::vector<int64_t>& recv_counts) const {
  std::vector<int> sc(static_cast<size_t>(size_)), rc(static_cast<size_t>(size_)), sd(static_cast<size_t>(size_)), rd(static_cast<size_t>(size_));
  int64_t so = 0, ro = 0;
  for (int r = 0; r < size_; ++r) {
    if (so > INT32_MAX || ro > INT32_MAX)
      throw CommError("alltoallv: displacement past 2^31 elements");
    sc[size_t(r)] = int(send_counts[size_t(r)]);
    rc[size_t(r)] = int(recv_counts[size_t(r)]);
    sd[size_t(r)] = int(so);
    rd[size_t(r)] = int(ro);
    so += send_counts[size_t(r)];
    ro += recv_counts[size_t(r)];
  }
  const Waiting w(Call::Alltoallv);
  check(MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type<T>(), recv, rc.data(), rd.data(),
                      mpi_type<T>(), comm_),
        "MPI_Alltoallv");
}

template <class T>
void Comm::allgatherv(const T* send, int64_t n, std::vector<T>* recv,
                      std::vector<int64_t>* counts) const {
  std::vector<int64_t> cnt(static_cast<size_t>(size_));
  allgather(&n, 1, cnt.data());
  std::vector<int> c, d;
  v_arrays(cnt, &c, &d);
  recv->resize(size_t(d.back()) + size_t(c.back()));
  const Waiting w(Call::Allgatherv);
  check(MPI_Allgatherv(send, int(n), mpi_type<T>(), recv->data(), c.data(), d.data(),
                       mpi_type<T>(), comm_),
        "MPI_Allgatherv");
  if (counts) *counts = std::move(cnt);
}

template <class T>
void Comm::gatherv(const T* send, int64_t n, std::vector<T>* recv, int root) const {
  std::vector<int64_t> cnt(static_cast<size_t>(size_));
  {
    const Waiting w(Call::Gather);
    check(MPI_Gather(&n, 1, MPI_INT64_T, cnt.data(), 1, MPI_INT64_T, root, comm_), "MPI_Gather");
  }
  std::vector<int> c, d;
  if (rank_ == root) {
    v_arrays(cnt, &c, &d);
    recv->resize(size_t(d.back()) + size_t(c.back()));
  }
  const Waiting w(Call::Gatherv);
  check(MPI_Gatherv(send, count32(n, "MPI_Gatherv"), mpi_type<T>(), recv->data(), c.data(),
                    d.data(), mpi_type<T>(), root, comm_),
        "MPI_Gatherv");
}

}  // namespace modelone::comm
