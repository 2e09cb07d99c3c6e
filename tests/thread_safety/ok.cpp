// Compiled with clang -Wthread-safety -Werror by tests/CMakeLists.txt: correct use of an
// annotated weft::mutex must compile without a warning.
#include <weft/sync/mutex.hpp>
#include <weft/thread_annotations.hpp>

#include <chrono>

class account {
public:
  void deposit(int n) {
    mu_.lock();
    balance_ += n;
    mu_.unlock();
  }
  bool try_deposit(int n) {
    if (!mu_.try_lock()) return false;
    balance_ += n;
    mu_.unlock();
    return true;
  }
  bool deposit_within(int n) {
    if (!mu_.try_lock_for(std::chrono::milliseconds(1))) return false;
    add_locked(n);
    mu_.unlock();
    return true;
  }

private:
  void add_locked(int n) WEFT_REQUIRES(mu_) { balance_ += n; }
  weft::mutex mu_;
  int balance_ WEFT_GUARDED_BY(mu_) = 0;
};

int main() {
  account a;
  a.deposit(1);
  return a.try_deposit(2) && a.deposit_within(3) ? 0 : 1;
}
