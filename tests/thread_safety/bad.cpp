// Compiled with clang -Wthread-safety -Werror by tests/CMakeLists.txt: it must fail, with
// the analysis naming the unguarded write (the test matches the diagnostic's text).
#include <weft/sync/mutex.hpp>
#include <weft/thread_annotations.hpp>

class account {
public:
  void deposit(int n) { balance_ += n; }  // the bug: mu_ is not held

private:
  weft::mutex mu_;
  int balance_ WEFT_GUARDED_BY(mu_) = 0;
};

int main() {
  account a;
  a.deposit(1);
  return 0;
}
