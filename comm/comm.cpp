#include "comm/comm.h"

#include <chrono>
#include <cstdio>
#include <thread>
#include <exception>
#include <cstdlib>

namespace modelone::comm {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw CommError(std::string(what) + " failed on rank " + std::to_string(rank) + ": " +
                  std::string(buf, size_t(len)));
}

Runtime::Runtime(int* argc, char*** argv, bool thread_multiple) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, thread_multiple ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED,
                        &provided), "MPI_Init_thread");
  // Errors come back as return codes (check() turns them into exceptions) instead of aborting
  // with MPI's own multi-line message.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

Runtime::~Runtime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

Comm Comm::world() {
  Comm c;
  c.comm_ = MPI_COMM_WORLD;
  MPI_Comm_rank(c.comm_, &c.rank_);
  MPI_Comm_size(c.comm_, &c.size_);
  return c;
}

Comm::~Comm() {
  if (owned_ && comm_ != MPI_COMM_NULL) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    // Collective: skipped while an exception unwinds (see SharedWindow::release).
    if (!finalized && std::uncaught_exceptions() == 0) MPI_Comm_free(&comm_);
  }
}

Comm::Comm(Comm&& o) noexcept { *this = std::move(o); }

Comm& Comm::operator=(Comm&& o) noexcept {
  if (this != &o) {
    this->~Comm();
    comm_ = o.comm_;
    owned_ = o.owned_;
    rank_ = o.rank_;
    size_ = o.size_;
    o.comm_ = MPI_COMM_NULL;
    o.owned_ = false;
  }
  return *this;
}

Comm Comm::split(int color, int key) const {
  Comm c;
  const Waiting w(Call::CommSplit);
  check(MPI_Comm_split(comm_, color, key, &c.comm_), "MPI_Comm_split");
  c.owned_ = true;
  MPI_Comm_set_errhandler(c.comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c.comm_, &c.rank_);
  MPI_Comm_size(c.comm_, &c.size_);
  return c;
}

Comm Comm::split_shared() const {
  Comm c;
  const Waiting w(Call::CommSplit);
  check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &c.comm_),
        "MPI_Comm_split_type");
  c.owned_ = true;
  MPI_Comm_set_errhandler(c.comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(c.comm_, &c.rank_);
  MPI_Comm_size(c.comm_, &c.size_);
  return c;
}

void Comm::barrier() const {
  const Waiting w(Call::Barrier);
  check(MPI_Barrier(comm_), "MPI_Barrier");
}

void Comm::barrier_idle() const {
  MPI_Request req;
  check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
  const Waiting w(Call::Barrier);
  for (int done = 0;;) {
    check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Comm::bcast_string(std::string* s, int root) const {
  int64_t n = int64_t(s->size());
  bcast(&n, 1, root);
  s->resize(size_t(n));
  if (n) bcast(s->data(), n, root);
}

std::vector<int64_t> Comm::exchange_counts(const std::vector<int64_t>& send_counts) const {
  std::vector<int64_t> recv(static_cast<size_t>(size_));
  const Waiting w(Call::Alltoall);
  check(MPI_Alltoall(send_counts.data(), 1, MPI_INT64_T, recv.data(), 1, MPI_INT64_T, comm_),
        "MPI_Alltoall");
  return recv;
}

namespace {
// counts[0..P) | displs[0..P) for the send side, then the same for the receive side, in rows.
std::vector<int> row_arrays(const std::vector<int64_t>& send_rows,
                            const std::vector<int64_t>& recv_rows) {
  const size_t P = send_rows.size();
  std::vector<int> a(4 * P);
  int64_t so = 0, ro = 0;
  for (size_t r = 0; r < P; ++r) {
    if (so > INT32_MAX || ro > INT32_MAX) throw CommError("alltoallv: more than 2^31 rows");
    a[r] = int(send_rows[r]);
    a[P + r] = int(so);
    a[2 * P + r] = int(recv_rows[r]);
    a[3 * P + r] = int(ro);
    so += send_rows[r];
    ro += recv_rows[r];
  }
  return a;
}

MPI_Datatype row_type(int64_t row_bytes) {
  MPI_Datatype t;
  check(MPI_Type_contiguous(int(row_bytes), MPI_BYTE, &t), "MPI_Type_contiguous");
  check(MPI_Type_commit(&t), "MPI_Type_commit");
  return t;
}
}  // namespace

void Comm::alltoallv_rows(const void* send, const std::vector<int64_t>& send_rows, void* recv,
                          const std::vector<int64_t>& recv_rows, int64_t row_bytes) const {
  // Blocking MPI_Alltoallv: no nonblocking schedule to build and progress (measured 0.4 us less
  // per call than MPI_Ialltoallv + MPI_Wait at 2 ranks for one row).
  const std::vector<int> a = row_arrays(send_rows, recv_rows);
  MPI_Datatype t = row_type(row_bytes);
  const size_t P = send_rows.size();
  const Waiting w(Call::Alltoallv);
  const int rc = MPI_Alltoallv(send, a.data(), a.data() + P, t, recv, a.data() + 2 * P,
                               a.data() + 3 * P, t, comm_);
  MPI_Type_free(&t);
  check(rc, "MPI_Alltoallv");
}

Request Comm::ialltoallv_rows(const void* send, const std::vector<int64_t>& send_rows, void* recv,
                              const std::vector<int64_t>& recv_rows, int64_t row_bytes) const {
  Request r;
  r.arrays_ = row_arrays(send_rows, recv_rows);
  r.type_ = row_type(row_bytes);
  const int* a = r.arrays_.data();
  const size_t P = send_rows.size();
  check(MPI_Ialltoallv(send, a, a + P, r.type_, recv, a + 2 * P, a + 3 * P, r.type_, comm_,
                       &r.req_),
        "MPI_Ialltoallv");
  return r;
}

Request::~Request() {
  // Waiting while an exception unwinds could wait for ranks that will never send.
  if (active() && std::uncaught_exceptions() == 0) {
    try {
      wait();
    } catch (...) {
    }
  }
  release();
}

Request::Request(Request&& o) noexcept { *this = std::move(o); }

Request& Request::operator=(Request&& o) noexcept {
  if (this != &o) {
    if (active()) {
      try {
        wait();
      } catch (...) {
      }
    }
    release();
    req_ = o.req_;
    type_ = o.type_;
    arrays_ = std::move(o.arrays_);
    o.req_ = MPI_REQUEST_NULL;
    o.type_ = MPI_DATATYPE_NULL;
  }
  return *this;
}

bool Request::test() {
  if (!active()) return true;
  int done = 0;
  check(MPI_Test(&req_, &done, MPI_STATUS_IGNORE), "MPI_Test");
  if (done) release();
  return done != 0;
}

void Request::wait() {
  if (!active()) return;
  {
    const Waiting w(Call::Wait);
    check(MPI_Wait(&req_, MPI_STATUS_IGNORE), "MPI_Wait");
  }
  release();
}

void Request::release() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (type_ != MPI_DATATYPE_NULL && !finalized) MPI_Type_free(&type_);
  type_ = MPI_DATATYPE_NULL;
}

int Comm::count32(int64_t n, const char* what) {
  if (n < 0 || n > INT32_MAX)
    throw CommError(std::string(what) + ": " + std::to_string(n) + " elements is past the 2^31 limit");
  return int(n);
}

void Comm::v_arrays(const std::vector<int64_t>& counts, std::vector<int>* c, std::vector<int>* d) {
  c->resize(counts.size());
  d->resize(counts.size());
  int64_t off = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    (*c)[i] = count32(counts[i], "gather");
    (*d)[i] = count32(off, "gather displacement");
    off += counts[i];
  }
  count32(off, "gather total");
}

bool RequestSet::progress() {
  std::vector<MPI_Request> raw;
  for (auto& r : reqs_)
    if (r.active()) raw.push_back(r.req_);
  if (raw.empty()) return true;
  int done = 0;
  check(MPI_Testall(int(raw.size()), raw.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  if (!done) return false;
  // MPI_Testall set the completed handles to MPI_REQUEST_NULL in our copy only.
  for (auto& r : reqs_) {
    r.req_ = MPI_REQUEST_NULL;
    r.release();
  }
  reqs_.clear();
  return true;
}

void RequestSet::wait_all() {
  for (auto& r : reqs_) r.wait();
  reqs_.clear();
}

MPI_Op Comm::mpi_op(Op op) {
  switch (op) {
    case Op::Sum: return MPI_SUM;
    case Op::Max: return MPI_MAX;
    case Op::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

void agree(const Comm& comm, const std::function<void()>& phase) {
  std::string msg;
  int64_t origin = comm.rank();  // the rank that met the error (kept from a nested agree)
  try {
    phase();
  } catch (const AgreedError& e) {
    msg = e.what();
    origin = e.failed_rank;
  } catch (const std::exception& e) {
    msg = e.what();
    if (msg.empty()) msg = "unknown error";
  }
  const int failed = msg.empty() ? comm.size() : comm.rank();
  const int first = comm.allreduce(failed, Op::Min);
  if (first == comm.size()) return;
  comm.bcast_string(&msg, first);
  comm.bcast(&origin, 1, first);
  throw AgreedError(msg, int(origin));
}

namespace {
uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

void agree_fields(const Comm& comm, const std::string& what,
                  const std::vector<std::pair<std::string, std::string>>& fields) {
  const int P = comm.size();
  if (P == 1) return;
  // Step 1: the field count and a hash per field, padded to the longest list (0: absent).
  int64_t n = int64_t(fields.size());
  const int64_t most = comm.allreduce(n, Op::Max);
  std::vector<uint64_t> mine(static_cast<size_t>(most), 0), all(static_cast<size_t>(most * P));
  for (int64_t i = 0; i < n; ++i)
    mine[size_t(i)] = fnv1a(fields[size_t(i)].second, fnv1a(fields[size_t(i)].first)) | 1;
  comm.allgather(mine.data(), most, all.data());
  int64_t bad = -1;
  for (int64_t i = 0; i < most && bad < 0; ++i)
    for (int r = 1; r < P; ++r)
      if (all[size_t(r * most + i)] != all[size_t(i)]) bad = i;
  if (bad < 0) return;
  // Step 2: every rank's text for the first differing field, grouped by value.
  auto shown = [](const std::string& v) {
    if (v.size() <= 60) return "'" + v + "'";
    char b[40];
    std::snprintf(b, sizeof b, "(digest %016llx)", static_cast<unsigned long long>(fnv1a(v)));
    return std::string(b);
  };
  std::string text = bad < n ? shown(fields[size_t(bad)].second) : std::string("nothing");
  std::string name = bad < n ? fields[size_t(bad)].first : std::string();
  std::vector<std::string> texts(static_cast<size_t>(P)), names(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) {
    std::string t = text, nm = name;
    comm.bcast_string(&t, r);
    comm.bcast_string(&nm, r);
    texts[size_t(r)] = t;
    names[size_t(r)] = nm;
  }
  std::string label;
  for (const auto& nm : names)
    if (!nm.empty()) { label = nm; break; }
  std::string msg = "ranks disagree on " + what + (label.empty() ? "" : ", " + label) + ":";
  std::vector<bool> done(static_cast<size_t>(P), false);
  for (int r = 0; r < P; ++r) {
    if (done[size_t(r)]) continue;
    std::vector<int> same;
    for (int q = r; q < P; ++q)
      if (!done[size_t(q)] && texts[size_t(q)] == texts[size_t(r)]) {
        same.push_back(q);
        done[size_t(q)] = true;
      }
    msg += (r ? "; " : " ") + texts[size_t(r)] + (same.size() > 1 ? " on ranks " : " on rank ");
    for (size_t i = 0; i < same.size(); ++i) msg += (i ? ", " : "") + std::to_string(same[i]);
  }
  throw AgreedError(msg, 0);
}

[[noreturn]] void abort_all(const std::string& msg, int code) {
  int rank = 0, size = 1, init = 0;
  MPI_Initialized(&init);
  if (init) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  std::fprintf(stderr, "modelone: error: rank %d: %s\n", rank, msg.c_str());
  std::fflush(stderr);
  if (init && size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

std::string library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  check(MPI_Get_library_version(buf, &len), "MPI_Get_library_version");
  std::string s(buf, size_t(len));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace modelone::comm
