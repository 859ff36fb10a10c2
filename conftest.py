# pytest's root: the fixtures every suite shares (testing/ is on pytest's pythonpath).
pytest_plugins = ["pytest_fixtures", "contract_server", "dbt_cloud_server"]
