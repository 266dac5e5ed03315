package azurite

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAzuriteEndsWithItsParent: a test process killed with SIGKILL (a
// timeout, a crash) leaves no Azurite behind.
func TestAzuriteEndsWithItsParent(t *testing.T) {
	if os.Getenv("AZURITE_TEST_PARENT") == "1" {
		s, err := Start(nil)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(s.QueuePort)
		select {} // until killed
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestAzuriteEndsWithItsParent$")
	parent.Env = append(os.Environ(), "AZURITE_TEST_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Process.Kill(); parent.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	port, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		t.Fatalf("parent said %q (%v)", line, err)
	}
	if !listening(port) {
		t.Fatalf("Azurite does not listen on %d", port)
	}
	parent.Process.Kill()
	parent.Wait()
	waitClosed(t, 5*time.Second, port)
}
