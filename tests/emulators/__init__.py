"""Local stand-ins for cloud APIs that no independent double serves."""
